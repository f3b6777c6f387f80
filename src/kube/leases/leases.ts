import type { HeldLease, LeaseHolder, LeaseTarget } from "../../domain/ports.ts";
import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { CoordinationV1Api, CoreV1Api, type KubeConfig, type V1Lease, V1MicroTime } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { PaasError } from "../../errors.ts";
import { httpCodeOf, isNetworkError, kubeError } from "../api/api-errors.ts";
import { createApi } from "../api/api-http.ts";
import { LeaseCache, UNKNOWN } from "./lease-cache.ts";
import { watchStream } from "../watch/watch-stream.ts";

// One coordination.k8s.io/v1 Lease per release (or per namespace, for namespace-level
// operations), in ONE namespace of the operator's own (LEASE_NAMESPACE, normally the pod's
// namespace): tenants have no rights there, so they cannot take or delete a lease.
//
// Expiry is decided on the holder's renewTime (else acquireTime) + leaseDurationSeconds,
// compared with the local clock of whoever looks. That is client-go leader election's
// rule minus its "observed time" refinement: nodes of a cluster are assumed NTP-synced
// (Kubernetes itself assumes it for node leases and certificates), and deciding on the
// stored time lets a restarted replica take over the leases of a crashed one as soon as
// they expire instead of watching each for a full duration first. A holder gives its lease
// up (`lost`) a little before that time when it cannot renew, so a skew below that margin
// never lets two holders overlap.
//
// Writes use optimistic concurrency (resourceVersion): of two replicas taking over the
// same lease, one gets 409 Conflict and goes back to waiting.

/** LEASE_NAME_PREFIX starts the name of every Lease this operator manages. */
export const LEASE_NAME_PREFIX = "paas-op-";
/** Annotations for humans (`kubectl get lease -o yaml`): what the lease guards and who holds it. */
export const NAMESPACE_ANNOTATION = "paas.io/namespace";
export const RELEASE_ANNOTATION = "paas.io/release";
export const OPERATION_ANNOTATION = "paas.io/operation";
const MANAGED_BY = { "app.kubernetes.io/managed-by": "paas-operator" };

/** LeaseManagerOptions configure a LeaseManager. */
export interface LeaseManagerOptions {
  kubeConfig: KubeConfig;
  /** Where the Leases live (LEASE_NAMESPACE). */
  namespace: string;
  /** leaseDurationSeconds: a holder that stops renewing loses the lease after this long. */
  durationSeconds: number;
  /** This replica's identity, e.g. the pod name; holders are "<replica>/<operationId>". */
  replica: string;
  logger: Logger;
  /** How often a waiter looks again (jittered ±50 %). Default 500 ms. */
  pollIntervalMs?: number;
  /** Deadline of one API request. Default 5 s. */
  requestTimeoutMs?: number;
}

export type { HeldLease, LeaseHolder, LeaseTarget };

/** LeaseRecord is the part of a Lease the expiry decision looks at. */
export interface LeaseRecord {
  holder: string;
  /** renewTime, else acquireTime; undefined when neither is set. */
  renewedAt: Date | undefined;
  durationSeconds: number;
}

/** leaseRecord reads a Lease (its MicroTimes arrive as strings from client-node, Dates when we wrote them). */
export function leaseRecord(lease: V1Lease): LeaseRecord {
  const spec = lease.spec ?? {};
  return {
    holder: spec.holderIdentity ?? "",
    renewedAt: toDate(spec.renewTime) ?? toDate(spec.acquireTime),
    durationSeconds: spec.leaseDurationSeconds ?? 0,
  };
}

/** isLive tells whether a lease is held at `now` (ms): a holder, and renewed less than its duration ago. */
export function isLive(rec: LeaseRecord, now: number): boolean {
  if (rec.holder === "" || rec.renewedAt === undefined || rec.durationSeconds <= 0) return false;
  return now < rec.renewedAt.getTime() + rec.durationSeconds * 1000;
}

/** lostMarginMs: how long before expiry a holder that cannot renew gives the lease up. */
export function lostMarginMs(durationSeconds: number): number {
  return Math.min(1000, (durationSeconds * 1000) / 10);
}

function toDate(v: unknown): Date | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  const d = v instanceof Date ? v : new Date(String(v));
  return Number.isNaN(d.getTime()) ? undefined : d;
}

function describeTarget(t: LeaseTarget): string {
  return t.release === "" ? `namespace ${t.namespace}` : `release ${t.namespace}/${t.release}`;
}

/** apiError maps a failed lease call: no answer, 429 and 5xx are "unavailable" (retryable), the rest as kubeError. */
function apiError(err: unknown, what: string): PaasError {
  if (err instanceof PaasError) return err;
  const code = httpCodeOf(err);
  if (code === undefined && isNetworkError(err))
    return new PaasError("unavailable", `${what}: Kubernetes API unreachable`, { cause: err });
  if (code !== undefined && (code >= 500 || code === 429))
    return new PaasError("unavailable", `${what}: Kubernetes API unavailable (HTTP ${code})`, { cause: err });
  return kubeError(err, what);
}

/** LeaseManager takes, renews and gives back the per-release Leases of one replica. */
export class LeaseManager {
  readonly #api: CoordinationV1Api;
  readonly #core: CoreV1Api;
  readonly #namespace: string;
  readonly #durationSeconds: number;
  readonly #replica: string;
  readonly #logger: Logger;
  readonly #pollMs: number;
  readonly #held = new Set<Held>();
  readonly #kubeConfig: KubeConfig;
  #cache: LeaseCache | undefined;
  // What a Held needs of its manager.
  readonly #ops: HeldOps = {
    api: () => this.#api,
    namespace: () => this.#namespace,
    read: (name) => this.#read(name, `read lease ${name}`),
    forget: (h) => this.#held.delete(h),
  };

  constructor(opts: LeaseManagerOptions) {
    if (!Number.isInteger(opts.durationSeconds) || opts.durationSeconds < 1)
      throw new Error("lease durationSeconds must be an integer >= 1");
    if (!opts.replica) throw new Error("lease replica identity must not be empty");
    const timeout = opts.requestTimeoutMs ?? 5_000;
    this.#kubeConfig = opts.kubeConfig;
    this.#api = createApi(opts.kubeConfig, timeout, CoordinationV1Api);
    this.#core = createApi(opts.kubeConfig, timeout, CoreV1Api);
    this.#namespace = opts.namespace;
    this.#durationSeconds = opts.durationSeconds;
    this.#replica = opts.replica;
    this.#logger = opts.logger.child({ component: "leases" });
    this.#pollMs = opts.pollIntervalMs ?? 500;
  }

  /** leaseName: "paas-op-" + the first 40 hex digits of sha256("<namespace>/<release>") (48 characters, a valid DNS label). */
  static leaseName(namespace: string, release: string): string {
    return LEASE_NAME_PREFIX + createHash("sha256").update(`${namespace}/${release}`).digest("hex").slice(0, 40);
  }

  /** ensureNamespace creates the lease namespace when absent (start-up); reading first, since it normally exists. */
  async ensureNamespace(): Promise<void> {
    const name = this.#namespace;
    try {
      await this.#core.readNamespace({ name });
      return;
    } catch (err) {
      if (httpCodeOf(err) !== 404) throw apiError(err, `read lease namespace "${name}"`);
    }
    try {
      await this.#core.createNamespace({
        body: { metadata: { name, labels: { "app.kubernetes.io/name": "paas-operator", ...MANAGED_BY } } },
      });
      this.#logger.info({ namespace: name }, "created the lease namespace");
    } catch (err) {
      if (httpCodeOf(err) !== 409) throw apiError(err, `create lease namespace "${name}"`);
    }
  }

  /**
   * acquire takes the lease of `target` for operation `operationId`: creates it when absent,
   * takes it over when expired or free, else waits (polling) until `deadline` (Date.now()
   * based) and then throws PaasError "conflict" naming the holder. API failures throw
   * "unavailable" at once; an aborted `signal` throws its reason.
   */
  async acquire(target: LeaseTarget, operationId: string, deadline: number, signal?: AbortSignal): Promise<HeldLease> {
    const name = LeaseManager.leaseName(target.namespace, target.release);
    const holder = `${this.#replica}/${operationId}`;
    const what = describeTarget(target);
    const log = this.#logger.child({ lease: name, namespace: target.namespace, release: target.release, holder });
    let waitingFor = "";
    let races = 0;
    for (;;) {
      signal?.throwIfAborted();
      const current = await this.#read(name, `read the lease of ${what}`);
      const now = Date.now();
      const rec = current ? leaseRecord(current) : undefined;
      let raced = false;
      if (!rec || !isLive(rec, now)) {
        const body = this.#body(name, target, operationId, holder, now, current);
        try {
          const written = current
            ? await this.#api.replaceNamespacedLease({ name, namespace: this.#namespace, body })
            : await this.#api.createNamespacedLease({ namespace: this.#namespace, body });
          if (rec?.holder) log.info({ previous: rec.holder }, "took over an expired lease");
          const held = new Held(this.#ops, log, written, holder, what, this.#durationSeconds * 1000, now);
          this.#held.add(held);
          if (signal?.aborted) {
            await held.release();
            signal.throwIfAborted();
          }
          return held;
        } catch (err) {
          // 409: another replica created or took it first (AlreadyExists, or a stale resourceVersion);
          // 404: the expired lease was deleted meanwhile. Either way: look again.
          const code = httpCodeOf(err);
          if (code !== 409 && !(code === 404 && current)) throw apiError(err, `take the lease of ${what}`);
          raced = true;
          races++;
        }
      } else {
        if (waitingFor !== rec.holder) log.debug({ current: rec.holder }, "lease held by another operation; waiting");
        waitingFor = rec.holder;
      }
      const left = deadline - Date.now();
      // A lost race is looked at again even past the deadline (a few times): the lease may be
      // free again (deleted), and otherwise the next read names the winner.
      if (left <= 0 && !(raced && races <= 3)) {
        const by =
          waitingFor ||
          (await this.#read(name, `read the lease of ${what}`).then((l) => (l ? leaseRecord(l).holder : "")));
        throw new PaasError("conflict", `${what} is being changed by operation ${by || "(unknown)"}; retry later`);
      }
      // After a lost race look again soon (the winner is now live); else poll, jittered so that waiters spread out.
      const pause = raced ? 20 + Math.random() * 50 : this.#pollMs * (0.5 + Math.random());
      await sleep(raced ? pause : Math.max(1, Math.min(pause, left)), undefined, { signal }).catch(() =>
        signal?.throwIfAborted(),
      );
    }
  }

  /**
   * watchHolders keeps a watched copy of this namespace's Leases, so that holderOf needs no
   * request of its own while the watch is up (it reads the API whenever the copy cannot tell).
   */
  watchHolders(): void {
    if (this.#cache) return;
    const path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.#namespace)}/leases`;
    this.#cache = new LeaseCache(
      {
        list: async () => {
          const l = await this.#api.listNamespacedLease({ namespace: this.#namespace });
          return { items: l.items, resourceVersion: l.metadata?.resourceVersion ?? "" };
        },
        watch: (rv, signal) => watchStream(this.#kubeConfig, path, { resourceVersion: rv }, signal),
      },
      this.#logger,
    );
    this.#cache.start();
  }

  /** holderOf reads who holds the lease of a release ("" for the namespace's own), or undefined when nobody does. */
  async holderOf(namespace: string, release: string): Promise<LeaseHolder | undefined> {
    const name = LeaseManager.leaseName(namespace, release);
    const cached = this.#cache?.get(name) ?? UNKNOWN;
    const lease =
      cached !== UNKNOWN
        ? cached
        : await this.#read(name, `read the lease of ${describeTarget({ namespace, release })}`);
    if (!lease) return undefined;
    const rec = leaseRecord(lease);
    if (rec.holder === "") return undefined;
    return {
      holder: rec.holder,
      renewedAt: rec.renewedAt ?? new Date(0),
      durationSeconds: rec.durationSeconds,
      live: isLive(rec, Date.now()),
    };
  }

  /** releaseAll gives back every lease this process holds (shutdown). */
  async releaseAll(): Promise<void> {
    await Promise.all([...this.#held].map((h) => h.release()));
    await this.#cache?.stop();
  }

  async #read(name: string, what: string): Promise<V1Lease | undefined> {
    try {
      return await this.#api.readNamespacedLease({ name, namespace: this.#namespace });
    } catch (err) {
      if (httpCodeOf(err) === 404) return undefined;
      throw apiError(err, what);
    }
  }

  #body(
    name: string,
    target: LeaseTarget,
    operationId: string,
    holder: string,
    now: number,
    prev: V1Lease | undefined,
  ): V1Lease {
    const at = new V1MicroTime(now);
    return {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: {
        ...prev?.metadata,
        name,
        namespace: this.#namespace,
        labels: { ...prev?.metadata?.labels, ...MANAGED_BY },
        annotations: {
          ...prev?.metadata?.annotations,
          [NAMESPACE_ANNOTATION]: target.namespace,
          [RELEASE_ANNOTATION]: target.release,
          [OPERATION_ANNOTATION]: operationId,
        },
      },
      spec: {
        holderIdentity: holder,
        leaseDurationSeconds: this.#durationSeconds,
        acquireTime: at,
        renewTime: at,
        leaseTransitions: prev ? (prev.spec?.leaseTransitions ?? 0) + 1 : 0,
      },
    };
  }
}

/**
 * Held renews its lease every duration/3. A failed renewal is retried about once a second;
 * when none has succeeded by (last renewal + duration - lostMarginMs), `lost` aborts. A
 * 409 whose re-read shows another holder, or a 404, aborts it at once.
 */
interface HeldOps {
  api(): CoordinationV1Api;
  namespace(): string;
  read(name: string): Promise<V1Lease | undefined>;
  forget(h: Held): void;
}

class Held implements HeldLease {
  readonly name: string;
  readonly holder: string;
  readonly lost: AbortSignal;
  readonly #ops: HeldOps;
  readonly #log: Logger;
  readonly #what: string;
  readonly #durationMs: number;
  readonly #lostCtl = new AbortController();
  #lease: V1Lease;
  #renewTimer: NodeJS.Timeout | undefined;
  #lostTimer: NodeJS.Timeout | undefined;
  #inflight: Promise<void> | undefined;
  #done = false; // released or lost: no more renewals
  #released = false;

  constructor(
    ops: HeldOps,
    log: Logger,
    lease: V1Lease,
    holder: string,
    what: string,
    durationMs: number,
    renewedAt: number,
  ) {
    this.#ops = ops;
    this.#log = log;
    this.#lease = lease;
    this.name = lease.metadata!.name!;
    this.holder = holder;
    this.#what = what;
    this.#durationMs = durationMs;
    this.lost = this.#lostCtl.signal;
    this.#armLost(renewedAt);
    this.#schedule(durationMs / 3);
  }

  #schedule(delayMs: number): void {
    if (this.#done) return;
    this.#renewTimer = setTimeout(() => {
      this.#inflight = this.#renew().finally(() => (this.#inflight = undefined));
    }, delayMs);
    this.#renewTimer.unref();
  }

  #armLost(renewedAt: number): void {
    clearTimeout(this.#lostTimer);
    const at = renewedAt + this.#durationMs - lostMarginMs(this.#durationMs / 1000);
    this.#lostTimer = setTimeout(() => this.#lose("Kubernetes API unreachable"), Math.max(0, at - Date.now()));
    this.#lostTimer.unref();
  }

  #lose(why: string): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#lostTimer);
    this.#log.warn({ why }, "lost the lease");
    this.#lostCtl.abort(new PaasError("unavailable", `lost the lease of ${this.#what}: ${why}`));
  }

  async #renew(): Promise<void> {
    if (this.#done) return;
    const now = Date.now();
    const body: V1Lease = { ...this.#lease, spec: { ...this.#lease.spec, renewTime: new V1MicroTime(now) } };
    try {
      this.#lease = await this.#ops
        .api()
        .replaceNamespacedLease({ name: this.name, namespace: this.#ops.namespace(), body });
      if (this.#done) return;
      this.#armLost(now);
      this.#schedule(this.#durationMs / 3);
      return;
    } catch (err) {
      if (this.#done) return;
      const code = httpCodeOf(err);
      if (code === 404) return this.#lose("the Lease was deleted");
      if (code === 409) {
        // Changed by someone else: still ours (say, a human edited an annotation) or taken over?
        let current: V1Lease | undefined;
        try {
          current = await this.#ops.read(this.name);
        } catch {
          return this.#schedule(this.#retryMs()); // unreachable now: the lost timer decides
        }
        if (this.#done) return;
        if (!current) return this.#lose("the Lease was deleted");
        const holder = leaseRecord(current).holder;
        if (holder !== this.holder) return this.#lose(`taken over by ${holder || "nobody"}`);
        this.#lease = current;
        return this.#schedule(0);
      }
      this.#log.warn({ err: apiError(err, "renew lease"), code }, "lease renewal failed; retrying");
      this.#schedule(this.#retryMs());
    }
  }

  /** #retryMs spaces retries of a failed renewal or deletion: a second, less for short leases. */
  #retryMs(): number {
    return Math.min(1000, this.#durationMs / 6);
  }

  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    this.#done = true;
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#lostTimer);
    this.#ops.forget(this);
    await this.#inflight?.catch(() => undefined);
    try {
      if (await this.#tryDelete()) return;
    } catch {
      // #tryDelete reports its own failures; release() never throws.
    }
    // Unreachable API: keep trying in the background for a while; the lease expires by itself anyway.
    const until = Date.now() + 2 * this.#durationMs;
    void (async () => {
      while (Date.now() < until) {
        await sleep(this.#retryMs(), undefined, { ref: false });
        if (await this.#tryDelete().catch(() => false)) return;
      }
      this.#log.warn("could not delete the lease; it expires by itself");
    })();
  }

  /** #tryDelete deletes the Lease if it is still ours; true when nothing is left to do. */
  async #tryDelete(): Promise<boolean> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const meta = this.#lease.metadata ?? {};
      try {
        await this.#ops.api().deleteNamespacedLease({
          name: this.name,
          namespace: this.#ops.namespace(),
          body: { preconditions: { uid: meta.uid, resourceVersion: meta.resourceVersion } },
        });
        this.#log.debug("released the lease");
        return true;
      } catch (err) {
        const code = httpCodeOf(err);
        if (code === 404) return true;
        if (code !== 409) {
          this.#log.warn(
            { err: apiError(err, "delete lease") },
            "could not delete the lease; retrying in the background",
          );
          return false;
        }
      }
      // Precondition failed: re-read; delete only while we are still the holder.
      let current: V1Lease | undefined;
      try {
        current = await this.#ops.read(this.name);
      } catch (err) {
        this.#log.warn({ err }, "could not read the lease back; retrying in the background");
        return false;
      }
      if (!current || leaseRecord(current).holder !== this.holder) return true;
      this.#lease = current;
    }
    return false;
  }
}
