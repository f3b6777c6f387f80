import type { StepListener } from "../domain/webhook.ts";
import {
  fromJsonString,
  toJson,
  toJsonString,
  type DescMessage,
  type JsonValue,
  type MessageShape,
} from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import type { Logger } from "pino";
import { valuesDigest } from "../audit/fingerprint.ts";
import { newAuditId, newOperationId } from "../audit/ids.ts";
import type { AuditRecord, AuditStore } from "../domain/audit.ts";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { codeOf, PaasError, type ErrorKind } from "../errors.ts";
import { metrics, since } from "../metrics/metrics.ts";
import { describeError, emptyRecord, fingerprintOf, replay } from "./audit-records.ts";
import { systemCall, type Call } from "./call.ts";
import type { Lifecycle } from "./lifecycle.ts";
import { OperationBus } from "./operation-bus.ts";
import { CALLER_LABEL, labelValue, OPERATION_LABEL } from "../helm/release-labels.ts";
import type { OperationQueue } from "./operation-queue.ts";
import { TERMINAL, type OperationRecord, type OperationState } from "../domain/operation.ts";
import type { ReleaseLocks } from "../domain/ports.ts";
import type { ReleaseRepair } from "./release-repair.ts";
import { snapshot, StepTracker } from "./step-tracker.ts";
import type { AnyVerb, Plan, Verb, VerbRun } from "./verb.ts";

export interface EngineDeps {
  /** Release operations: one at a time per release, at most HELM_CONCURRENCY at once. */
  queue: OperationQueue;
  /** Namespace operations (release ""): short API calls that must not wait for helm slots. */
  namespaceQueue: OperationQueue;
  lifecycle: Lifecycle;
  /** The audit log, the idempotency keys and the operations (one store). */
  store: AuditStore;
  locks: ReleaseLocks;
  repair: ReleaseRepair;
  /** This process: pod name plus a start id. */
  replica: string;
  /** How long a synchronous mutation waits for its release (queue, then Lease) before ABORTED; an async one waits this long for the Lease. */
  waitTimeoutMs: number;
  idempotencyTtlMs: number;
  /** A replica whose heartbeat is older than this is dead: its queued operations are adopted. */
  replicaTtlMs: number;
  /** After a lost Lease, how long helm gets to exit on SIGTERM before a synchronous caller is answered (default 5 s). */
  lostAnswerGraceMs?: number;
  /** How often cancellations asked on other replicas are looked for (default 1 s). */
  pollMs?: number;
  /** How long ended operations are kept (default 30 days). */
  retentionMs?: number;
  /** Told of every step that starts or ends (webhooks' operation.step). */
  onStep?: StepListener;
  logger: Logger;
}

/** SubmitOptions say who asks for a mutation and how it is answered. */
export interface SubmitOptions {
  call: Call;
  /** Answer once the operation is queued instead of when it has ended. */
  async: boolean;
  /** Told the operation's id as soon as it has one (and the first one's, on an idempotent retry). */
  announce?: (operationId: string) => void;
}

/** Submitted is how a mutation was answered: its response (synchronous), or its queued operation (async). */
export type Submitted<Res extends DescMessage> =
  { operationId: string; response: MessageShape<Res> } | { operationId: string; accepted: OperationRecord };

/** Live is an operation this replica runs (or has queued). */
interface Live {
  op: OperationRecord;
  verb: AnyVerb;
  tracker: StepTracker;
  cancel: AbortController;
  /** Who cancelled it, for the record. */
  cancelledBy?: string;
  /** Its end is written already (cancelled while queued): nothing more to record. */
  closed?: boolean;
  done: Promise<unknown>;
}

// Transient refusals free the idempotency key so that a retry runs the operation.
const TRANSIENT: ReadonlySet<ErrorKind> = new Set(["unavailable", "conflict"]);

const DEFAULT_RETENTION_MS = 30 * 24 * 3600 * 1000;
const ADOPT_BATCH = 20;
/** How long CancelOperation waits for a running operation to stop before answering. */
const CANCEL_ANSWER_MS = 10_000;

/**
 * OperationEngine runs every mutation as an operation: idempotency key → the operation and
 * its audit intent, durable in one transaction → the in-process queue → the release's Lease
 * → repair of a release left pending by a dead operation → the verb's steps → the final
 * state and the audit outcome in one transaction (before the Lease is given up) → the stored
 * result for retries. Callers may wait for the end (synchronous) or take the queued
 * operation and follow it (async); a queued operation of a replica that died is adopted by
 * a live one. The one place where mutations are ordered, recorded and cancelled.
 */
export class OperationEngine {
  readonly bus = new OperationBus();
  private readonly deps: EngineDeps;
  private readonly verbs = new Map<string, AnyVerb>();
  private readonly live = new Map<string, Live>();
  private timers: NodeJS.Timeout[] = [];
  private polling: Promise<unknown> | undefined;

  constructor(deps: EngineDeps) {
    this.deps = deps;
  }

  /** register adds verbs; a queued operation of another replica is run by the verb of its method. */
  register(...verbs: AnyVerb[]): void {
    for (const v of verbs) this.verbs.set(v.method, v);
  }

  /** running is the number of operations this replica has queued or running. */
  get running(): number {
    return this.live.size;
  }

  /**
   * submit runs one mutation. With the request's `async` field (or `Prefer: respond-async`)
   * it answers as soon as the operation is durably queued; otherwise when it has ended, with
   * the verb's response or its error — the contract of the synchronous RPCs.
   */
  async submit<Req extends DescMessage, Res extends DescMessage>(
    verb: Verb<Req, Res>,
    req: MessageShape<Req>,
    options: SubmitOptions,
  ): Promise<Submitted<Res>> {
    const { call, async } = options;
    const plan = await verb.prepare(req);
    this.deps.lifecycle.assertAcceptingMutations();
    const { store } = this.deps;
    const id = newOperationId();
    const named = (operationId: string) => options.announce?.(operationId);
    named(id);

    let claimed = false;
    if (call.idempotencyKey) {
      const claim = await store.claimIdempotency({
        caller: call.caller,
        key: call.idempotencyKey,
        fingerprint: fingerprintOf(verb.method, verb.request, req),
        operationId: id,
        method: verb.method,
        ttlMs: this.deps.idempotencyTtlMs,
      });
      if (claim.state === "mismatch") {
        throw new PaasError(
          "failed_precondition",
          `this idempotency key was used for a different request (operation ${claim.operationId}); use a new key`,
          { reason: "IDEMPOTENCY_KEY_REUSED" },
        );
      }
      if (claim.state !== "claimed") {
        const first = async ? await store.getOperation(claim.operationId) : undefined;
        if (first) {
          named(first.id);
          return { operationId: first.id, accepted: first };
        }
        if (claim.state === "running") {
          throw new PaasError(
            "conflict",
            `the first request with this idempotency key is still running (operation ${claim.operationId}); retry later for its result`,
            { reason: "IDEMPOTENCY_KEY_IN_USE" },
          );
        }
        this.deps.logger.info(
          { operation: claim.operationId, method: verb.method },
          "idempotent retry answered from the stored result",
        );
        named(claim.operationId);
        metrics.idempotentReplays.inc({ method: verb.method });
        return { operationId: claim.operationId, response: replay(verb.response, claim.result) };
      }
      claimed = true;
    }

    const now = new Date();
    const op: OperationRecord = {
      id,
      kind: verb.kind,
      method: verb.method,
      namespace: plan.namespace,
      release: plan.release,
      caller: call.caller,
      idempotencyKey: call.idempotencyKey,
      state: "queued",
      createdAt: now,
      steps: [],
      request: toJsonString(verb.request, req),
      params: plan.params,
      response: "",
      responseType: verb.response.typeName,
      replica: this.deps.replica,
      cancelRequested: false,
      updatedAt: now,
    };
    try {
      await store.createOperation(op, {
        ...this.baseRecord(verb, plan, call, id),
        id: newAuditId(),
        time: now,
        stage: "intent",
      });
    } catch (err) {
      if (claimed)
        await this.quietly(
          () => store.abandonIdempotency(call.caller, call.idempotencyKey, id),
          "freeing an idempotency key",
        );
      throw new PaasError("unavailable", "the audit log is unavailable; the mutation was refused (reads still work)", {
        cause: err,
      });
    }
    const work = this.start(op, verb as AnyVerb, plan as Plan<DescMessage>, call, !async);
    if (async) {
      work.catch(() => undefined);
      return { operationId: id, accepted: snapshot(op) };
    }
    return { operationId: id, response: (await work) as MessageShape<Res> };
  }

  /**
   * start runs a queued operation on this replica; the promise settles with its response or
   * error. Synchronous callers are answered early (UNAVAILABLE) when the Lease is lost and
   * helm has not stopped soon after its SIGTERM; the operation is still recorded when it ends.
   */
  private start(
    op: OperationRecord,
    verb: AnyVerb,
    plan: Plan<DescMessage>,
    call: Call,
    sync: boolean,
  ): Promise<MessageShape<DescMessage>> {
    const { lifecycle, locks, repair, store, logger } = this.deps;
    const tracker = new StepTracker(op, store, this.bus, logger, this.deps.onStep);
    const cancel = new AbortController();
    const entry: Live = { op, verb, tracker, cancel, done: Promise.resolve() };
    this.live.set(op.id, entry);
    const target = { namespace: plan.namespace, release: plan.release };
    const queue = plan.release ? this.deps.queue : this.deps.namespaceQueue;
    const key = `${plan.namespace}/${plan.release}`;
    const started = Date.now();
    const waitMs = plan.waitMs ?? this.deps.waitTimeoutMs;
    // A synchronous call bounds queue and Lease together; an async operation waits in the
    // queue as long as it takes (it is durable and visible) and bounds the Lease only.
    const deadline = sync ? started + waitMs : undefined;
    const ahead = queue.holderOf(key);
    tracker.begin("wait-for-release", ahead ? `queued behind operation ${ahead}` : "");

    let answerLost!: (err: PaasError) => void;
    const lostAnswer = new Promise<never>((_, reject) => (answerLost = reject));
    lostAnswer.catch(() => undefined);
    let ended = false;
    let handedOff = false;
    let response: MessageShape<DescMessage> | undefined;
    let failure: unknown;
    let before = 0;

    const work = queue
      .run(
        key,
        async () => {
          cancel.signal.throwIfAborted();
          if (sync && call.signal.aborted)
            throw new PaasError("unavailable", "the call was cancelled before it started");
          if (!sync && lifecycle.draining) {
            // Shutting down: an async operation that has not started stays queued in the
            // store, and a live replica adopts it once this one's heartbeat has stopped.
            ended = true;
            handedOff = true;
            throw new PaasError(
              "unavailable",
              `operation ${op.id} is left queued for another replica (this one is shutting down)`,
            );
          }
          if (!(await store.startOperation(op.id, this.deps.replica, new Date()))) {
            // Cancelled while queued (its end is written), or adopted by another replica.
            ended = true;
            throw new PaasError("cancelled", `operation ${op.id} was cancelled before it started`, {
              reason: "OPERATION_CANCELLED",
            });
          }
          op.state = "running";
          op.startedAt = new Date();
          tracker.publish();
          const holder = await locks.holderOf(plan.namespace, plan.release).catch(() => undefined);
          if (holder?.live) tracker.detail("wait-for-release", `waiting for the Lease held by ${holder.holder}`);
          const leaseAsked = performance.now();
          const lease = await locks
            .acquire(
              target,
              op.id,
              deadline ?? Date.now() + waitMs,
              sync ? AbortSignal.any([cancel.signal, call.signal]) : cancel.signal,
            )
            .catch((err: unknown) => {
              metrics.leaseWait.observe({ outcome: "failed" }, since(leaseAsked));
              throw err;
            });
          metrics.leaseWait.observe({ outcome: "acquired" }, since(leaseAsked));
          tracker.end("wait-for-release", `holding the Lease ${lease.name}`);
          const lostMessage = `lost the Lease of ${plan.namespace}/${plan.release || "(namespace)"} (Kubernetes API unreachable); helm was sent SIGTERM`;
          lease.lost.addEventListener(
            "abort",
            () => {
              setTimeout(
                () =>
                  answerLost(
                    new PaasError(
                      "unavailable",
                      `${lostMessage} and is still stopping; its outcome will be in the audit log`,
                    ),
                  ),
                this.deps.lostAnswerGraceMs ?? 5000,
              ).unref();
            },
            { once: true },
          );
          try {
            if (plan.release && plan.repairFirst !== false) {
              const at = new Date();
              const fixed = await repair.repairHeld(plan.namespace, plan.release, op.id, call);
              if (fixed)
                tracker.add(
                  "repair",
                  `revision ${fixed.revision} was ${fixed.status} with no live operation; marked failed`,
                  at,
                );
            }
            before = await repair.revisionOf(plan.namespace, plan.release);
            cancel.signal.throwIfAborted();
            const stop = verb.stoppable
              ? AbortSignal.any([lease.lost, cancel.signal, lifecycle.helmSignal])
              : AbortSignal.any([lease.lost, cancel.signal]);
            try {
              response = await plan.perform(this.runOf(entry, call, stop));
            } catch (err) {
              if (lease.lost.aborted) throw new PaasError("unavailable", lostMessage, { cause: err });
              // helm stopped by SIGTERM may leave the release pending: mark it failed now, while
              // this operation still holds the release, instead of waiting for recovery.
              if (plan.release)
                await this.quietly(
                  () => repair.repairHeld(plan.namespace, plan.release, op.id, call),
                  "repairing after a failed operation",
                );
              throw err;
            }
            return response;
          } catch (err) {
            failure = err;
            throw err;
          } finally {
            const after = await repair.revisionOf(plan.namespace, plan.release).catch(() => 0);
            // The end is durable before the Lease is given up: whoever takes the release next
            // sees this operation closed.
            ended = true;
            await this.finish(entry, plan, call, started, response, failure, before, after);
            await lease.release();
          }
        },
        { deadline, label: `${this.deps.replica}/${op.id}` },
      )
      .then(
        async (result) => {
          if (call.idempotencyKey) {
            await this.quietly(
              () =>
                store.completeIdempotency(call.caller, call.idempotencyKey, op.id, {
                  ok: true,
                  response: toJsonString(verb.response, result),
                }),
              "storing an idempotent result",
            );
          }
          return result;
        },
        async (raw: unknown) => {
          if (handedOff) throw raw;
          const err = this.cancelledError(entry, raw);
          if (!ended) await this.finish(entry, plan, call, started, undefined, err, 0, 0);
          if (call.idempotencyKey) {
            const f = describeError(err);
            if (TRANSIENT.has(f.kind))
              await this.quietly(
                () => store.abandonIdempotency(call.caller, call.idempotencyKey, op.id),
                "freeing an idempotency key",
              );
            else
              await this.quietly(
                () => store.completeIdempotency(call.caller, call.idempotencyKey, op.id, { ok: false, ...f }),
                "storing an idempotent result",
              );
          }
          throw err;
        },
      )
      .finally(() => this.live.delete(op.id));
    entry.done = work.catch(() => undefined);
    // The work goes on after an early answer; its failure is recorded above, not lost.
    work.catch(() => undefined);
    return sync ? Promise.race([work, lostAnswer]) : work;
  }

  /** runOf is what the verb's perform gets. */
  private runOf(entry: Live, call: Call, signal: AbortSignal): VerbRun {
    const { tracker, op } = entry;
    return {
      id: op.id,
      call,
      signal,
      labels: labelsOf(call.caller, op.id),
      steps: tracker,
      step: (name, fn, detailOf) => tracker.run(name, fn, detailOf, entry.cancel.signal),
      progress: (p) => tracker.progress(p),
    };
  }

  /** cancelledError turns whatever a cancelled operation failed with into CANCELLED. */
  private cancelledError(entry: Live, err: unknown): unknown {
    if (!entry.cancel.signal.aborted) return err;
    if (err instanceof PaasError && err.kind === "cancelled") return err;
    const helm = entry.tracker.has("apply") ? "; helm was sent SIGTERM" : " before helm started";
    return new PaasError(
      "cancelled",
      `operation ${entry.op.id} was cancelled by ${entry.cancelledBy || "a caller"}${helm}`,
      { cause: err, reason: "OPERATION_CANCELLED" },
    );
  }

  /** finish writes the operation's end and its audit outcome, in one transaction. */
  private async finish(
    entry: Live,
    plan: Plan<DescMessage>,
    call: Call,
    started: number,
    res: MessageShape<DescMessage> | undefined,
    raw: unknown,
    before: number,
    after: number,
  ): Promise<void> {
    const { op, tracker, verb } = entry;
    if (entry.closed) return;
    entry.closed = true;
    const err = raw === undefined ? undefined : this.cancelledError(entry, raw);
    const f = err === undefined ? undefined : describeError(err);
    const state: OperationState = f === undefined ? "succeeded" : f.kind === "cancelled" ? "cancelled" : "failed";
    let message = f?.message ?? "";
    if (state === "cancelled" && plan.release && tracker.has("apply")) {
      const now = await this.deps.repair.revisionOf(plan.namespace, plan.release).catch(() => 0);
      const status = await this.releaseStatus(plan.namespace, plan.release);
      message += status ? `; the release is now ${status} (revision ${now})` : "";
    }
    await tracker.settled();
    tracker.begin("record");
    tracker.closeSteps(state === "succeeded" ? "succeeded" : state === "cancelled" ? "cancelled" : "failed");
    const record = tracker.op.steps.findLast((s) => s.name === "record");
    if (record) record.state = "succeeded";
    const finishedAt = new Date();
    const outcome: AuditRecord = {
      ...this.baseRecord(verb, plan, call, op.id),
      id: newAuditId(),
      time: finishedAt,
      stage: "outcome",
      outcome: f ? "failed" : res && plan.outcomeOf ? plan.outcomeOf(res) : "succeeded",
      chartVersion: (res && plan.versionOf?.(res)) || plan.chartVersion || "",
      revisionBefore: before,
      revisionAfter: after,
      durationMs: Date.now() - started,
      errorCode: f ? codeToString(codeOf(f.kind)) : "",
      errorMessage: message,
    };
    const responseJson = res ? JSON.stringify(withoutValues(toJson(verb.response, res))) : "";
    const error = f ? { code: grpcCodeName(f.kind), message, reason: f.reason ?? "" } : undefined;
    try {
      const written = await this.deps.store.finishOperation(
        op.id,
        {
          state,
          finishedAt,
          steps: op.steps,
          ...(op.progress ? { progress: op.progress } : {}),
          response: responseJson,
          ...(error ? { error } : {}),
        },
        outcome,
      );
      if (!written)
        this.deps.logger.warn(
          { operation: op.id },
          "operations: this operation was already closed (cancelled, or recovered by another replica)",
        );
    } catch (e) {
      this.deps.logger.error(
        { operation: op.id, err: e instanceof Error ? e.message : String(e) },
        "operations: failed writing the end of an operation",
      );
    }
    op.state = state;
    op.finishedAt = finishedAt;
    metrics.operations.inc({ kind: op.kind, state });
    op.response = responseJson;
    if (error) op.error = error;
    op.request = "";
    tracker.publish();
  }

  private async releaseStatus(namespace: string, release: string): Promise<string> {
    try {
      return (await this.deps.repair.newest(namespace, release))?.status ?? "";
    } catch {
      return "";
    }
  }

  /**
   * cancel cancels an operation: a queued one at once; a running one before helm starts, or
   * (install, upgrade) by SIGTERM to its helm. A rollback or uninstall whose helm started, or
   * an operation that ended, is FAILED_PRECONDITION. The caller has checked the caller's scope.
   */
  async cancel(id: string, by: string): Promise<OperationRecord> {
    const { store } = this.deps;
    const found = await store.getOperation(id);
    if (!found) throw new PaasError("not_found", `operation ${id} not found`);
    const live = this.live.get(id);
    let op: OperationRecord = live ? snapshot(live.op) : found;
    if (TERMINAL.has(op.state))
      throw new PaasError("failed_precondition", `operation ${id} has already ended (${op.state})`);
    const verb = this.verbs.get(op.method);
    if (op.state === "queued") {
      const finishedAt = new Date();
      const steps = op.steps.map((s) =>
        s.state === "running" ? { ...s, state: "cancelled" as const, finishedAt } : s,
      );
      const message = `operation ${id} was cancelled by ${by} before it started`;
      const error = { code: "CANCELLED", message, reason: "OPERATION_CANCELLED" };
      const outcome: AuditRecord = {
        ...emptyRecord(),
        id: newAuditId(),
        time: finishedAt,
        stage: "outcome",
        outcome: "failed",
        operationId: id,
        caller: op.caller,
        method: op.method,
        namespace: op.namespace,
        release: op.release,
        idempotencyKey: op.idempotencyKey,
        durationMs: finishedAt.getTime() - op.createdAt.getTime(),
        errorCode: codeToString(codeOf("cancelled")),
        errorMessage: message,
        replica: this.deps.replica,
      };
      if (await store.finishOperation(id, { state: "cancelled", finishedAt, steps, error }, outcome, ["queued"])) {
        metrics.operations.inc({ kind: op.kind, state: "cancelled" });
        if (live) {
          live.cancelledBy = by;
          live.closed = true;
          live.cancel.abort(new PaasError("cancelled", message, { reason: "OPERATION_CANCELLED" }));
          Object.assign(live.op, { state: "cancelled", finishedAt, steps, error });
          live.tracker.publish();
        }
        const { caller, idempotencyKey } = op;
        if (idempotencyKey && !live) {
          await this.quietly(
            () =>
              store.completeIdempotency(caller, idempotencyKey, id, {
                ok: false,
                kind: "cancelled",
                message,
                reason: "OPERATION_CANCELLED",
              }),
            "storing an idempotent result",
          );
        }
        return (await store.getOperation(id)) ?? op;
      }
      // It started meanwhile: cancel it as a running one.
      op = (live ? snapshot(live.op) : await store.getOperation(id)) ?? op;
      if (TERMINAL.has(op.state))
        throw new PaasError("failed_precondition", `operation ${id} has already ended (${op.state})`);
    }
    const applying = op.steps.some((s) => s.name === "apply");
    if (applying && verb && !verb.stoppable) {
      throw new PaasError(
        "failed_precondition",
        `operation ${id} (${op.kind}) is running helm, which cannot be stopped without leaving the release pending; wait for it to end`,
      );
    }
    if (live) {
      live.cancelledBy = by;
      live.cancel.abort(
        new PaasError("cancelled", `operation ${id} was cancelled by ${by}`, { reason: "OPERATION_CANCELLED" }),
      );
      await Promise.race([live.done, sleep(CANCEL_ANSWER_MS)]);
    } else {
      await store.requestCancel(id);
      const until = Date.now() + CANCEL_ANSWER_MS;
      while (Date.now() < until) {
        const now = await store.getOperation(id);
        if (!now || TERMINAL.has(now.state)) break;
        await sleep(250);
      }
    }
    return (await store.getOperation(id)) ?? op;
  }

  /**
   * watch yields the operation as it is now, then after every change, and returns after it
   * has ended. Changes on this replica come from the bus; those of operations another
   * replica runs are read from the store every `pollMs`.
   */
  async *watch(id: string, signal: AbortSignal): AsyncGenerator<OperationRecord> {
    let op = this.live.get(id)?.op ?? (await this.deps.store.getOperation(id));
    if (!op) throw new PaasError("not_found", `operation ${id} not found`);
    const pending: OperationRecord[] = [];
    let wake: (() => void) | undefined;
    const unsubscribe = this.bus.subscribe(id, (next) => {
      pending.push(next);
      if (pending.length > 256) pending.shift();
      wake?.();
    });
    const onAbort = () => wake?.();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      op = snapshot(this.live.get(id)?.op ?? op);
      let last = fingerprint(op);
      yield op;
      while (!TERMINAL.has(op.state) && !signal.aborted) {
        if (pending.length === 0) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(resolve, this.deps.pollMs ?? 1000).unref();
          });
          wake = undefined;
        }
        if (signal.aborted) return;
        let next: OperationRecord | undefined = pending.shift();
        if (!next && !this.live.has(id)) next = await this.deps.store.getOperation(id);
        if (!next) continue;
        const f = fingerprint(next);
        if (f === last) continue;
        last = f;
        op = next;
        yield op;
      }
    } finally {
      unsubscribe();
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** wait returns the operation once it has ended, or as it is when `timeoutMs` has passed. */
  async wait(id: string, timeoutMs: number, signal: AbortSignal): Promise<OperationRecord> {
    const timeout = AbortSignal.timeout(timeoutMs);
    let last: OperationRecord | undefined;
    for await (const op of this.watch(id, AbortSignal.any([signal, timeout]))) last = op;
    if (!last) throw new PaasError("not_found", `operation ${id} not found`);
    return last;
  }

  /** start runs the background work: adopting queued operations of dead replicas, cancellations asked elsewhere, the purge. */
  startBackground(adoptEveryMs: number): void {
    const every = (ms: number, fn: () => Promise<unknown>) => {
      const t = setInterval(() => void this.once(fn), ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.deps.pollMs ?? 1000, () => this.pollCancellations());
    every(adoptEveryMs, () => this.adopt());
    every(3600_000, () => this.purge());
    void this.once(() => this.adopt());
    void this.once(() => this.purge());
  }

  async stopBackground(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.polling;
  }

  /**
   * adopt takes over the queued operations of replicas that died (no heartbeat within
   * replicaTtlMs) and runs them here; the store hands each to one replica only. Returns how many.
   */
  async adopt(): Promise<number> {
    if (this.deps.lifecycle.draining) return 0;
    const ops = await this.deps.store.adoptQueued(this.deps.replica, this.deps.replicaTtlMs, ADOPT_BATCH);
    for (const op of ops) {
      this.deps.logger.info(
        { operation: op.id, kind: op.kind, namespace: op.namespace, release: op.release },
        "adopted a queued operation of a replica that stopped",
      );
      const verb = this.verbs.get(op.method);
      const call: Call = { ...systemCall(op.caller), idempotencyKey: op.idempotencyKey };
      let plan: Plan<DescMessage>;
      try {
        if (!verb) throw new PaasError("internal", `no verb for ${op.method}`);
        plan = await verb.prepare(fromJsonString(verb.request, op.request));
      } catch (err) {
        const f = describeError(err);
        await this.deps.store.finishOperation(
          op.id,
          {
            state: "failed",
            finishedAt: new Date(),
            steps: op.steps,
            error: { code: grpcCodeName(f.kind), message: f.message, reason: f.reason ?? "" },
          },
          undefined,
          ["queued"],
        );
        continue;
      }
      const work = this.start(op, verb, plan, call, false);
      work.catch(() => undefined);
    }
    return ops.length;
  }

  /** pollCancellations stops the operations here whose cancellation was asked on another replica. */
  private async pollCancellations(): Promise<void> {
    const ids = [...this.live.keys()];
    if (ids.length === 0) return;
    for (const id of await this.deps.store.cancelRequested(ids)) {
      const live = this.live.get(id);
      if (!live || live.cancel.signal.aborted) continue;
      if (!live.verb.stoppable && live.tracker.has("apply")) continue;
      live.cancelledBy = "a caller on another replica";
      live.cancel.abort(new PaasError("cancelled", `operation ${id} was cancelled`, { reason: "OPERATION_CANCELLED" }));
    }
  }

  /** purge deletes operations that ended longer than the retention ago; the audit log keeps its records. */
  async purge(): Promise<number> {
    return this.deps.store.purgeOperations(new Date(Date.now() - (this.deps.retentionMs ?? DEFAULT_RETENTION_MS)));
  }

  /** idle resolves when this replica has no operation queued or running. */
  async idle(): Promise<void> {
    while (this.live.size > 0) await Promise.allSettled([...this.live.values()].map((l) => l.done));
  }

  private async once(fn: () => Promise<unknown>): Promise<void> {
    if (this.polling) return;
    this.polling = fn()
      .catch((err: unknown) =>
        this.deps.logger.warn(
          { err: err instanceof Error ? err.message : String(err) },
          "operations: background pass failed; retrying later",
        ),
      )
      .finally(() => (this.polling = undefined));
    await this.polling;
  }

  private baseRecord(
    verb: AnyVerb,
    plan: Plan<DescMessage>,
    call: Call,
    id: string,
  ): Omit<AuditRecord, "id" | "time" | "stage"> {
    return {
      ...emptyRecord(),
      operationId: id,
      caller: call.caller,
      sourceIp: call.sourceIp,
      userAgent: call.userAgent,
      method: verb.method,
      namespace: plan.namespace,
      release: plan.release,
      chartReference: plan.chartReference ?? "",
      chartVersion: plan.chartVersion ?? "",
      valuesSha256: valuesDigest(plan.values),
      idempotencyKey: call.idempotencyKey,
      replica: this.deps.replica,
      requestId: call.requestId,
    };
  }

  private async quietly(fn: () => Promise<unknown>, what: string): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.deps.logger.error({ err: err instanceof PaasError ? err.message : String(err) }, `audit: failed ${what}`);
    }
  }
}

function labelsOf(caller: string, id: string): Record<string, string> {
  const labels: Record<string, string> = { [OPERATION_LABEL]: id };
  const value = labelValue(caller);
  if (value) labels[CALLER_LABEL] = value;
  return labels;
}

/**
 * withoutValues drops user-supplied values from a response as the operation keeps it: an
 * operation is kept for weeks and listed to everyone who may read the namespace, and values
 * may hold passwords (GetRelease still returns them, as the old operator did).
 */
function withoutValues(json: JsonValue): JsonValue {
  if (Array.isArray(json)) return json.map(withoutValues);
  if (json === null || typeof json !== "object") return json;
  return Object.fromEntries(
    Object.entries(json)
      .filter(([k, v]) => !(k === "values" && typeof v === "object"))
      .map(([k, v]) => [k, withoutValues(v)]),
  );
}

/** grpcCodeName is the canonical gRPC name of a kind's code, as operations report it: "FAILED_PRECONDITION", "CANCELLED". */
function grpcCodeName(kind: ErrorKind): string {
  const code = codeOf(kind);
  return code === Code.Canceled ? "CANCELLED" : codeToString(code).toUpperCase();
}

/** fingerprint tells two versions of an operation apart (state, steps, progress). */
function fingerprint(op: OperationRecord): string {
  return JSON.stringify([op.state, op.steps, op.progress]);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
