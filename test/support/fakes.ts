import { PaasError } from "../../src/errors.ts";
import type {
  CommonOptions,
  HelmClient,
  InstallOptions,
  RollbackOptions,
  UpgradeOptions,
} from "../../src/helm/helm-client.ts";
import type { ReleaseInfo, RevisionInfo } from "../../src/domain/release.ts";
import type { WorkloadReplicas } from "../../src/kube/watch/workload-replicas.ts";
import type {
  HeldLease,
  LeaseHolder,
  LeaseTarget,
  PendingRevision,
  PendingStatus,
  ReleaseLocks,
  ReleaseRecovery,
} from "../../src/domain/ports.ts";
import type {
  KubeClient,
  NamespaceInfo,
  NamespaceOptions,
  PodInfo,
  QuotaSpec,
  ReleaseWatchEvent,
  StoredRelease,
} from "../../src/kube/kube-types.ts";

/** FakeCluster is the in-memory state shared by FakeHelm and FakeKube. */
export class FakeCluster {
  namespaces = new Map<string, { quota: QuotaSpec; managed: boolean }>();
  /** History per "namespace/name", oldest first. */
  releases = new Map<string, StoredRelease[]>();
  pods = new Map<string, PodInfo[]>();

  history(namespace: string, name: string): StoredRelease[] {
    return this.releases.get(`${namespace}/${name}`) ?? [];
  }
}

type Verb = "version" | "install" | "upgrade" | "rollback" | "uninstall" | "get" | "history" | "list";

/** FakeHelm implements HelmClient over a FakeCluster; it records calls and can fail or delay per verb. */
export class FakeHelm implements HelmClient {
  calls: Array<{ verb: Verb; args: unknown }> = [];
  errors: Partial<Record<Verb, unknown>> = {};
  delayMs: Partial<Record<Verb, number>> = {};
  running = 0;
  maxRunning = 0;
  readonly cluster: FakeCluster;

  constructor(cluster: FakeCluster) {
    this.cluster = cluster;
  }

  private async enter(verb: Verb, args: unknown): Promise<void> {
    this.calls.push({ verb, args });
    // Steps as the real adapter reports them (src/helm/cli.ts): a write pulls, then applies.
    const { steps, signal } = (typeof args === "object" && args !== null ? args : {}) as {
      steps?: CommonOptions["steps"];
      signal?: AbortSignal;
    };
    if (verb === "install" || verb === "upgrade") {
      steps?.begin("pull");
      steps?.end("pull", "fake 1.0.0");
    }
    const writes = verb === "install" || verb === "upgrade" || verb === "rollback" || verb === "uninstall";
    if (writes) steps?.begin("apply");
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      const delay = this.delayMs[verb];
      if (delay) {
        // Like helm on SIGTERM: stop and fail.
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(resolve, delay);
          signal?.addEventListener(
            "abort",
            () => {
              clearTimeout(t);
              this.terminated.push(verb);
              reject(new PaasError("internal", `helm ${verb} was interrupted`));
            },
            { once: true },
          );
        });
      }
      const err = this.errors[verb];
      if (err) throw err;
    } finally {
      this.running--;
    }
    if (writes) steps?.end("apply");
  }

  /** Verbs whose run was stopped through its signal (helm got SIGTERM). */
  terminated: Verb[] = [];

  verbs(): Verb[] {
    return this.calls.map((c) => c.verb);
  }

  async version(): Promise<string> {
    await this.enter("version", undefined);
    return "v4.3.1";
  }

  async install(o: InstallOptions): Promise<ReleaseInfo> {
    await this.enter("install", o);
    if (this.cluster.history(o.namespace, o.name).length > 0)
      throw new PaasError("already_exists", `cannot re-use a name that is still in use: ${o.name}`);
    return this.record(
      o.namespace,
      o.name,
      o.chart.ref,
      o.chart.version ?? "1.0.0",
      o.values,
      o.labels,
      "Install complete",
    );
  }

  async upgrade(o: UpgradeOptions): Promise<ReleaseInfo> {
    await this.enter("upgrade", o);
    const h = this.cluster.history(o.namespace, o.name);
    if (h.length === 0) throw new PaasError("not_found", `Release ${o.name} not found in namespace ${o.namespace}`);
    const prev = h[h.length - 1]!;
    const values = o.reuseValues ? { ...prev.release.values, ...o.values } : o.values;
    return this.record(
      o.namespace,
      o.name,
      o.chart.ref,
      o.chart.version ?? "2.0.0",
      values,
      { ...prev.labels, ...o.labels },
      "Upgrade complete",
    );
  }

  async rollback(o: RollbackOptions): Promise<void> {
    await this.enter("rollback", o);
    const h = this.cluster.history(o.namespace, o.name);
    const target = o.revision === 0 ? h[h.length - 2] : h.find((r) => r.release.revision === o.revision);
    if (!target) throw new PaasError("not_found", `Release ${o.name} revision not found`);
    const r = target.release;
    this.record(o.namespace, o.name, r.chart, r.chartVersion, r.values, target.labels, `Rollback to ${r.revision}`);
  }

  async uninstall(o: CommonOptions): Promise<void> {
    await this.enter("uninstall", o);
    if (!this.cluster.releases.delete(`${o.namespace}/${o.name}`))
      throw new PaasError("not_found", `Release ${o.name} not found in namespace ${o.namespace}`);
  }

  async get(namespace: string, name: string): Promise<ReleaseInfo> {
    await this.enter("get", { namespace, name });
    const h = this.cluster.history(namespace, name);
    if (h.length === 0) throw new PaasError("not_found", `Release ${name} not found in namespace ${namespace}`);
    return h[h.length - 1]!.release;
  }

  async history(namespace: string, name: string): Promise<RevisionInfo[]> {
    await this.enter("history", { namespace, name });
    const h = this.cluster.history(namespace, name);
    if (h.length === 0) throw new PaasError("not_found", `Release ${name} not found in namespace ${namespace}`);
    return h.map(({ release: r }) => ({
      revision: r.revision,
      status: r.status,
      chart: `${r.chart}-${r.chartVersion}`,
      appVersion: r.appVersion,
      description: r.description,
      ...(r.updated ? { updated: r.updated } : {}),
    }));
  }

  async list(namespace: string): Promise<ReleaseInfo[]> {
    await this.enter("list", { namespace });
    return [...this.cluster.releases.entries()]
      .filter(([key]) => key.startsWith(`${namespace}/`))
      .map(([, h]) => h[h.length - 1]!.release);
  }

  private record(
    namespace: string,
    name: string,
    chartRef: string,
    version: string,
    values: ReleaseInfo["values"],
    labels: Record<string, string>,
    description: string,
  ): ReleaseInfo {
    const key = `${namespace}/${name}`;
    const h = this.cluster.releases.get(key) ?? [];
    for (const old of h) old.release.status = "superseded";
    const release: ReleaseInfo = {
      name,
      namespace,
      revision: h.length + 1,
      status: "deployed",
      chart: chartRef.split("/").pop()!,
      chartVersion: version,
      appVersion: version,
      updated: new Date("2026-11-21T10:00:00Z"),
      description,
      values,
      notes: "",
    };
    h.push({ release, labels: Object.fromEntries(Object.entries(labels).filter(([, v]) => v !== "")) });
    this.cluster.releases.set(key, h);
    return release;
  }
}

/** FakeKube implements KubeClient over a FakeCluster. */
export class FakeKube implements KubeClient {
  calls: string[] = [];
  pingError: unknown;
  podsError: unknown;
  watchEvents: ReleaseWatchEvent[] = [];
  /** watchHold: after watchEvents, the watch stays open until its signal aborts (as a real one). */
  watchHold = false;
  readonly cluster: FakeCluster;

  constructor(cluster: FakeCluster) {
    this.cluster = cluster;
  }

  async ping(): Promise<void> {
    this.calls.push("ping");
    if (this.pingError) throw this.pingError;
  }

  async ensureNamespace(
    name: string,
    quota: QuotaSpec,
    options: NamespaceOptions = {},
  ): Promise<{ created: boolean; namespace: NamespaceInfo }> {
    this.calls.push(`ensureNamespace ${name}${options.podSecurity ? ` ${options.podSecurity}` : ""}`);
    const existing = this.cluster.namespaces.get(name);
    if (existing && !existing.managed)
      throw new PaasError("permission_denied", `namespace ${name} is not managed by this service`);
    for (const step of ["namespace", "limit-range", "quota", "network-policy", "deployer-identity", "ready"]) {
      options.steps?.begin(step);
      options.steps?.end(step);
    }
    this.cluster.namespaces.set(name, { quota, managed: true });
    return { created: !existing, namespace: this.info(name) };
  }

  async getNamespace(name: string): Promise<NamespaceInfo> {
    this.calls.push(`getNamespace ${name}`);
    if (!this.cluster.namespaces.get(name)?.managed) throw new PaasError("not_found", `namespace ${name} not found`);
    return this.info(name);
  }

  async listNamespaces(prefix: string): Promise<NamespaceInfo[]> {
    this.calls.push("listNamespaces");
    return [...this.cluster.namespaces.entries()]
      .filter(([n, v]) => v.managed && n.startsWith(prefix))
      .map(([n]) => this.info(n));
  }

  async deleteNamespace(name: string): Promise<void> {
    this.calls.push(`deleteNamespace ${name}`);
    if (!this.cluster.namespaces.get(name)?.managed) throw new PaasError("not_found", `namespace ${name} not found`);
    this.cluster.namespaces.delete(name);
  }

  async listReleasePods(namespace: string, release: string): Promise<PodInfo[]> {
    this.calls.push(`listReleasePods ${namespace}/${release}`);
    if (this.podsError) throw this.podsError;
    return this.cluster.pods.get(`${namespace}/${release}`) ?? [];
  }

  /** Workloads per "namespace/release", as releaseWorkloads reports them. */
  workloads = new Map<string, WorkloadReplicas[]>();

  async releaseWorkloads(namespace: string, release: string): Promise<WorkloadReplicas[]> {
    this.calls.push(`releaseWorkloads ${namespace}/${release}`);
    return this.workloads.get(`${namespace}/${release}`) ?? [];
  }

  async getStoredRelease(namespace: string, release: string): Promise<StoredRelease | undefined> {
    this.calls.push(`getStoredRelease ${namespace}/${release}`);
    const h = this.cluster.history(namespace, release);
    return h[h.length - 1];
  }

  async *watchRelease(namespace: string, release: string, signal: AbortSignal): AsyncIterable<ReleaseWatchEvent> {
    this.calls.push(`watchRelease ${namespace}/${release}`);
    for (const e of this.watchEvents) {
      if (signal.aborted) return;
      yield e;
    }
    if (this.watchHold && !signal.aborted)
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
  }

  private info(name: string): NamespaceInfo {
    const q = this.cluster.namespaces.get(name)!.quota;
    return {
      name,
      phase: "Active",
      quota: [
        { resource: "limits.cpu", hard: q.cpu, used: "0" },
        { resource: "limits.memory", hard: q.memory, used: "0" },
        { resource: "requests.storage", hard: q.storage, used: "0" },
      ],
    };
  }
}

/**
 * FakeLocks implements ReleaseLocks in memory with the Lease semantics the operations rely
 * on: one holder per target, waiting until a deadline, then a conflict naming the holder.
 * `lose()` aborts a held lease's `lost` signal, as a failed renewal would; `holdFor()` makes
 * another "replica" hold a target.
 */
export class FakeLocks implements ReleaseLocks {
  private readonly held = new Map<
    string,
    { holder: string; lost: AbortController; released: Promise<void>; resolve: () => void }
  >();
  readonly replica: string;
  acquired: string[] = [];
  unavailable: unknown;

  constructor(replica = "test-replica") {
    this.replica = replica;
  }

  private static key(t: LeaseTarget): string {
    return `${t.namespace}/${t.release}`;
  }

  async acquire(target: LeaseTarget, operationId: string, deadline: number): Promise<HeldLease> {
    if (this.unavailable) throw this.unavailable;
    const key = FakeLocks.key(target);
    for (;;) {
      const current = this.held.get(key);
      if (!current) break;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new PaasError("conflict", `release ${key} is being changed by operation ${current.holder}; retry later`);
      await Promise.race([current.released, new Promise((r) => setTimeout(r, left))]);
    }
    return this.take(key, `${this.replica}/${operationId}`);
  }

  /** holdFor makes `holder` hold the target until the returned function is called. */
  holdFor(target: LeaseTarget, holder: string): { release: () => void; lose: () => void } {
    const lease = this.take(FakeLocks.key(target), holder);
    return { release: () => void lease.release(), lose: () => this.lose(target) };
  }

  lose(target: LeaseTarget): void {
    this.held
      .get(FakeLocks.key(target))
      ?.lost.abort(new PaasError("unavailable", "lost the lease: Kubernetes API unreachable"));
  }

  isHeld(target: LeaseTarget): boolean {
    return this.held.has(FakeLocks.key(target));
  }

  async holderOf(namespace: string, release: string): Promise<LeaseHolder | undefined> {
    const h = this.held.get(`${namespace}/${release}`);
    return h ? { holder: h.holder, renewedAt: new Date(), durationSeconds: 15, live: true } : undefined;
  }

  async releaseAll(): Promise<void> {
    for (const [key, h] of [...this.held]) {
      this.held.delete(key);
      h.resolve();
    }
  }

  private take(key: string, holder: string): HeldLease {
    let resolve!: () => void;
    const released = new Promise<void>((r) => (resolve = r));
    const lost = new AbortController();
    const entry = { holder, lost, released, resolve };
    this.held.set(key, entry);
    this.acquired.push(`${key} ${holder}`);
    return {
      name: `fake-${key}`,
      holder,
      lost: lost.signal,
      release: async () => {
        if (this.held.get(key) === entry) this.held.delete(key);
        resolve();
      },
    };
  }
}

/** FakeRecovery repairs pending releases of a FakeCluster the way src/kube/storage/release-recovery.ts does. */
export class FakeRecovery implements ReleaseRecovery {
  readonly cluster: FakeCluster;
  repaired: string[] = [];

  constructor(cluster: FakeCluster) {
    this.cluster = cluster;
  }

  async markPendingFailed(
    namespace: string,
    release: string,
    description: string,
  ): Promise<PendingRevision | undefined> {
    const h = this.cluster.history(namespace, release);
    const last = h[h.length - 1];
    if (!last || !last.release.status.startsWith("pending-")) return undefined;
    const status = last.release.status as PendingStatus;
    const since = last.release.pendingSince;
    last.release = { ...last.release, status: "failed", description, pendingSince: undefined };
    last.labels = { ...last.labels, status: "failed" };
    this.repaired.push(`${namespace}/${release}`);
    return { namespace, release, revision: last.release.revision, status, ...(since ? { since } : {}) };
  }

  async newestRevision(namespace: string, release: string): Promise<{ revision: number; status: string } | undefined> {
    const last = this.cluster.history(namespace, release).at(-1);
    return last ? { revision: last.release.revision, status: last.release.status } : undefined;
  }

  async stampRevision(
    namespace: string,
    release: string,
    revision: number,
    labels: Record<string, string>,
  ): Promise<void> {
    const stored = this.cluster.history(namespace, release).find((r) => r.release.revision === revision);
    if (!stored) throw new PaasError("not_found", `revision ${revision} of ${release} not found`);
    stored.labels = { ...stored.labels, ...labels };
  }

  async listPending(prefix: string): Promise<PendingRevision[]> {
    const out: PendingRevision[] = [];
    for (const [key, h] of this.cluster.releases) {
      const last = h[h.length - 1];
      const [namespace = "", release = ""] = key.split("/");
      if (last && namespace.startsWith(prefix) && last.release.status.startsWith("pending-")) {
        const since = last.release.pendingSince;
        out.push({
          namespace,
          release,
          revision: last.release.revision,
          status: last.release.status as PendingStatus,
          ...(since ? { since } : {}),
        });
      }
    }
    return out;
  }
}
