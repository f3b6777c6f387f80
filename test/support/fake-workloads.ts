import { PaasError } from "../../src/errors.ts";
import type {
  ClaimInfo,
  PodBrief,
  PodUse,
  ScalableKind,
  WorkloadClient,
  WorkloadInfo,
  WorkloadKindName,
} from "../../src/kube/workloads/workload-types.ts";

interface FakeWorkload {
  info: WorkloadInfo;
  resourceVersion: number;
}

/**
 * FakeWorkloads is an in-memory WorkloadClient: scaling sets desired and (after `settle`) ready
 * replicas at once; StatefulSet pods are "<name>-<ordinal>", and their claims
 * "<template>-<name>-<ordinal>" are created when a pod exists and has none. `calls` records
 * every write (dry runs included) for assertions; `onPoll` lets a test interfere between polls.
 */
export class FakeWorkloads implements WorkloadClient {
  workloads = new Map<string, FakeWorkload>();
  claims = new Map<string, ClaimInfo & { mountedBy: string[] }>();
  pods = new Map<string, PodBrief & { claims: string[] }>();
  calls: string[] = [];
  onPoll?: (what: string) => void;
  private uid = 0;

  add(
    namespace: string,
    kind: WorkloadKindName,
    name: string,
    replicas: number,
    extra: Partial<WorkloadInfo> = {},
  ): void {
    this.workloads.set(`${namespace}/${kind}/${name}`, {
      resourceVersion: 1,
      info: {
        kind,
        name,
        namespace,
        desired: replicas,
        ready: replicas,
        updated: replicas,
        current: replicas,
        paused: false,
        helmRelease: "",
        observed: true,
        failure: "",
        perPod: { "limits.cpu": 0.1, "limits.memory": 64 * 2 ** 20 },
        undeclared: [],
        claimTemplates: [],
        restartedAt: "",
        ...extra,
      },
    });
    this.settle(namespace, kind, name);
  }

  claim(namespace: string, name: string, mountedBy: string[] = []): void {
    this.claims.set(`${namespace}/${name}`, {
      name,
      uid: `uid-${++this.uid}`,
      phase: "Bound",
      terminating: false,
      finalizers: ["kubernetes.io/pvc-protection"],
      mountedBy,
    });
  }

  private find(namespace: string, kind: WorkloadKindName, name: string): FakeWorkload {
    const w = this.workloads.get(`${namespace}/${kind}/${name}`);
    if (!w) throw new PaasError("not_found", `read ${kind} ${namespace}/${name}: not found`);
    return w;
  }

  /** settle makes the StatefulSet's pods and claims match its replicas. */
  private settle(namespace: string, kind: WorkloadKindName, name: string): void {
    const w = this.find(namespace, kind, name).info;
    w.ready = w.updated = w.current = w.desired;
    if (kind !== "StatefulSet") return;
    for (const [key, p] of this.pods) {
      const ordinal = Number(p.name.slice(name.length + 1));
      if (key.startsWith(`${namespace}/${name}-`) && ordinal >= w.desired) {
        this.pods.delete(key);
        for (const c of p.claims) {
          const claim = this.claims.get(`${namespace}/${c}`);
          if (claim) claim.mountedBy = claim.mountedBy.filter((m) => m !== p.name);
          if (claim?.terminating && claim.mountedBy.length === 0 && claim.finalizers.length <= 1)
            this.claims.delete(`${namespace}/${c}`);
        }
      }
    }
    for (let i = 0; i < w.desired; i++) {
      const pod = `${name}-${i}`;
      if (this.pods.has(`${namespace}/${pod}`)) continue;
      const claims = w.claimTemplates.map((t) => `${t}-${pod}`);
      for (const c of claims) {
        if (!this.claims.has(`${namespace}/${c}`)) this.claim(namespace, c);
        this.claims.get(`${namespace}/${c}`)!.mountedBy.push(pod);
      }
      this.pods.set(`${namespace}/${pod}`, {
        name: pod,
        uid: `pod-${++this.uid}`,
        phase: "Running",
        ready: true,
        terminating: false,
        claims,
      });
    }
  }

  async list(namespace: string): Promise<WorkloadInfo[]> {
    return [...this.workloads.values()].map((w) => w.info).filter((w) => w.namespace === namespace);
  }
  async get(namespace: string, kind: WorkloadKindName, name: string): Promise<WorkloadInfo> {
    this.onPoll?.(`get ${kind} ${name}`);
    return { ...this.find(namespace, kind, name).info };
  }
  async readScale(namespace: string, kind: ScalableKind, name: string) {
    this.onPoll?.(`readScale ${kind} ${name}`);
    const w = this.find(namespace, kind, name);
    return { replicas: w.info.desired, resourceVersion: String(w.resourceVersion) };
  }
  async writeScale(namespace: string, kind: ScalableKind, name: string, replicas: number, rv: string, dryRun: boolean) {
    this.calls.push(`scale ${kind} ${name} ${replicas}${dryRun ? " dry" : ""}`);
    const w = this.find(namespace, kind, name);
    if (rv !== String(w.resourceVersion)) throw new PaasError("conflict", "modified concurrently, retry");
    if (dryRun) return replicas;
    w.info.desired = replicas;
    w.resourceVersion++;
    this.settle(namespace, kind, name);
    return replicas;
  }
  /** scaleBehind changes replicas as another client would. */
  scaleBehind(namespace: string, kind: ScalableKind, name: string, replicas: number): void {
    const w = this.find(namespace, kind, name);
    w.info.desired = replicas;
    w.resourceVersion++;
    this.settle(namespace, kind, name);
  }
  async restart(namespace: string, kind: ScalableKind, name: string, at: string, dryRun: boolean) {
    this.calls.push(`restart ${kind} ${name}${dryRun ? " dry" : ""}`);
    const w = this.find(namespace, kind, name);
    if (w.info.paused) throw new PaasError("failed_precondition", "paused");
    if (!dryRun) w.info.restartedAt = at;
  }
  async getPod(namespace: string, name: string): Promise<PodBrief> {
    const p = this.pods.get(`${namespace}/${name}`);
    if (!p) throw new PaasError("not_found", `read pod ${namespace}/${name}: not found`);
    return p;
  }
  async deletePod(_namespace: string, name: string, grace: number | undefined, dryRun: boolean) {
    this.calls.push(`delete pod ${name}${grace !== undefined ? ` grace=${grace}` : ""}${dryRun ? " dry" : ""}`);
  }
  async getClaim(namespace: string, name: string): Promise<ClaimInfo | undefined> {
    this.onPoll?.(`getClaim ${name}`);
    const c = this.claims.get(`${namespace}/${name}`);
    return c
      ? { name: c.name, uid: c.uid, phase: c.phase, terminating: c.terminating, finalizers: [...c.finalizers] }
      : undefined;
  }
  async deleteClaim(namespace: string, name: string, dryRun: boolean) {
    this.calls.push(`delete pvc ${name}${dryRun ? " dry" : ""}`);
    const c = this.claims.get(`${namespace}/${name}`);
    if (!c) throw new PaasError("not_found", "not found");
    if (dryRun) return;
    if (c.mountedBy.length > 0 || c.finalizers.length > 1) c.terminating = true;
    else this.claims.delete(`${namespace}/${name}`);
  }
  async podsMounting(namespace: string, claim: string): Promise<PodUse[]> {
    const c = this.claims.get(`${namespace}/${claim}`);
    return (c?.mountedBy ?? []).map((name) => ({ name, phase: "Running", active: true }));
  }
  async podsOf(namespace: string, statefulset: string): Promise<PodBrief[]> {
    this.onPoll?.(`podsOf ${statefulset}`);
    return [...this.pods.entries()].filter(([k]) => k.startsWith(`${namespace}/${statefulset}-`)).map(([, p]) => p);
  }
}
