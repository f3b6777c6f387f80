import { clone, fromJsonString, toJson, toJsonString, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import type { Logger } from "pino";
import { canonicalJson, sha256Hex, valuesDigest } from "../audit/fingerprint.ts";
import { newAuditId, newOperationId } from "../audit/ids.ts";
import type { AuditOutcome, AuditRecord, AuditStore, StoredResult } from "../audit/audit-store.ts";
import { callerKey, operationKey, peerKey, requestIdKey } from "../server/request-context.ts";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { codeOf, PaasError, type ErrorKind, type ErrorReason } from "../errors.ts";
import type { JsonObject } from "../domain/release.ts";
import type { Lifecycle } from "./lifecycle.ts";
import type { OperationQueue } from "./operation-queue.ts";
import { CALLER_LABEL, labelValue, OPERATION_LABEL } from "./operation-labels.ts";
import type { PendingRevision, ReleaseLocks, ReleaseRecovery } from "./ports.ts";


/** Call is who asks for a mutation and how, from the request's context. */
export interface Call {
  caller: string;
  sourceIp: string;
  userAgent: string;
  requestId: string;
  idempotencyKey: string;
  /** The caller's cancellation: an operation not yet started when it fires does not start. */
  signal: AbortSignal;
}

/** Running is what a mutation's body gets while it holds the release. */
export interface Running {
  id: string;
  /** Who asked, as read from the request. */
  call: Call;
  /** Aborts when helm must stop: the Lease was lost, or (for stoppable work) the grace period ends. */
  signal: AbortSignal;
  /** Helm labels recording the caller and the operation. */
  labels: Record<string, string>;
}

/** Mutation describes one mutating call for the runner. */
export interface Mutation<Req extends DescMessage, Res extends DescMessage> {
  /** "paas.v1.ReleaseService/UpgradeRelease" */
  method: string;
  namespace: string;
  /** "" for a namespace-level operation. */
  release: string;
  request: { schema: Req; message: MessageShape<Req> };
  response: Res;
  chartReference?: string;
  chartVersion?: string;
  values?: JsonObject;
  /** helm may receive SIGTERM when the grace period runs out (install, upgrade). */
  stoppableOnShutdown?: boolean;
  /** Repair a pending release before running (default true for releases). */
  repairFirst?: boolean;
  /** How long to wait for the release; default the runner's bound. */
  waitMs?: number;
  run(op: Running): Promise<MessageShape<Res>>;
  /** Resolved chart version, for the outcome record. */
  versionOf?(res: MessageShape<Res>): string;
  /** Outcome of a successful run; default "succeeded". */
  outcomeOf?(res: MessageShape<Res>): AuditOutcome;
}

export interface OperationsDeps {
  /** Release operations: one at a time per release, at most HELM_CONCURRENCY at once. */
  queue: OperationQueue;
  /** Namespace operations (release ""): short API calls that must not wait for helm slots. */
  namespaceQueue: OperationQueue;
  lifecycle: Lifecycle;
  audit: AuditStore;
  locks: ReleaseLocks;
  /** Repairs stuck releases; also reads revision numbers from the storage metadata. */
  recovery: ReleaseRecovery;
  /** This process: pod name plus a start id. */
  replica: string;
  /** How long a mutation waits for its release (queue, then Lease) before ABORTED. */
  waitTimeoutMs: number;
  idempotencyTtlMs: number;
  /** A replica whose heartbeat is older than this is dead; its open intents may be closed. */
  replicaTtlMs: number;
  /** After a lost Lease, how long helm gets to exit on SIGTERM before the caller is answered (default 5 s). */
  lostAnswerGraceMs?: number;
  logger: Logger;
}

// Transient refusals free the idempotency key so that a retry runs the operation.
const TRANSIENT: ReadonlySet<ErrorKind> = new Set(["unavailable", "conflict"]);

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;


/**
 * Operations runs every mutation the same way: idempotency key → audit intent (refused when
 * it cannot be written) → in-process queue → the release's Lease → repair of a release left
 * pending by a dead operation → the work → audit outcome (before the Lease is given up) →
 * the stored result for retries. The one place where mutations are ordered and recorded.
 */
export class Operations {
  private readonly deps: OperationsDeps;

  constructor(deps: OperationsDeps) {
    this.deps = deps;
  }

  /** call reads who is calling from the handler context; the key may come as header or field. */
  private call(ctx: HandlerContext, fieldKey: string): Call {
    const header = ctx.requestHeader.get("idempotency-key") ?? "";
    if (header && fieldKey && header !== fieldKey) {
      throw new PaasError("invalid_argument", "the Idempotency-Key header and the idempotency_key field differ");
    }
    const key = fieldKey || header;
    if (key && !IDEMPOTENCY_KEY.test(key)) {
      throw new PaasError("invalid_argument", "idempotency key must be 1 to 255 printable ASCII characters without spaces");
    }
    return {
      caller: ctx.values.get(callerKey)?.id ?? "",
      sourceIp: ctx.values.get(peerKey),
      userAgent: (ctx.requestHeader.get("user-agent") ?? "").slice(0, 256),
      requestId: ctx.values.get(requestIdKey),
      idempotencyKey: key,
      signal: ctx.signal,
    };
  }

  /**
   * mutate runs one mutation; see the class comment for the order of steps. The idempotency
   * key is the request's idempotency_key field or the Idempotency-Key header.
   */
  async mutate<Req extends DescMessage, Res extends DescMessage>(m: Mutation<Req, Res>, ctx: HandlerContext): Promise<MessageShape<Res>> {
    const { audit, lifecycle } = this.deps;
    const field = (m.request.message as { idempotencyKey?: unknown }).idempotencyKey;
    const call = this.call(ctx, typeof field === "string" ? field : "");
    lifecycle.assertAcceptingMutations();
    const id = newOperationId();
    ctx.values.set(operationKey, id);
    const started = Date.now();
    const base = this.baseRecord(m, call, id);

    let claimed = false;
    if (call.idempotencyKey) {
      const claim = await audit.claimIdempotency({
        caller: call.caller,
        key: call.idempotencyKey,
        fingerprint: fingerprintOf(m.method, m.request.schema, m.request.message),
        operationId: id,
        method: m.method,
        ttlMs: this.deps.idempotencyTtlMs,
      });
      switch (claim.state) {
        case "done":
          this.deps.logger.info({ operation: claim.operationId, method: m.method }, "idempotent retry answered from the stored result");
          return replay(m.response, claim.result);
        case "running":
          throw new PaasError("conflict", `the first request with this idempotency key is still running (operation ${claim.operationId}); retry later for its result`, { reason: "IDEMPOTENCY_KEY_IN_USE" });
        case "mismatch":
          throw new PaasError("failed_precondition", `this idempotency key was used for a different request (operation ${claim.operationId}); use a new key`, { reason: "IDEMPOTENCY_KEY_REUSED" });
        case "claimed":
          claimed = true;
      }
    }

    try {
      await audit.append({ ...base, id: newAuditId(), time: new Date(started), stage: "intent" });
    } catch (err) {
      if (claimed) await this.quietly(() => audit.abandonIdempotency(call.caller, call.idempotencyKey, id), "freeing an idempotency key");
      throw new PaasError("unavailable", "the audit log is unavailable; the mutation was refused (reads still work)", { cause: err });
    }

    let outcomeWritten = false;
    const writeOutcome = async (result: MessageShape<Res> | undefined, err: unknown, before: number, after: number) => {
      outcomeWritten = true;
      const failure = err === undefined ? undefined : describeError(err);
      const record: AuditRecord = {
        ...base,
        id: newAuditId(),
        time: new Date(),
        stage: "outcome",
        outcome: failure ? "failed" : result && m.outcomeOf ? m.outcomeOf(result) : "succeeded",
        chartVersion: (result && m.versionOf?.(result)) || base.chartVersion,
        revisionBefore: before,
        revisionAfter: after,
        durationMs: Date.now() - started,
        errorCode: failure ? codeToString(codeOf(failure.kind)) : "",
        errorMessage: failure?.message ?? "",
      };
      await this.quietly(async () => {
        if ((await audit.append(record)) === "duplicate") this.deps.logger.warn({ operation: id }, "audit: this operation was already closed (recovered by another replica)");
      }, "writing an audit outcome");
    };

    const waitMs = m.waitMs ?? this.deps.waitTimeoutMs;
    const deadline = started + waitMs;
    // Answers UNAVAILABLE when the Lease was lost and helm has not stopped soon after its
    // SIGTERM (client-go may retry for a while): the caller is not held hostage by an API
    // outage. The operation itself still ends, and is recorded, when helm exits.
    let answerLost!: (err: PaasError) => void;
    const lostAnswer = new Promise<never>((_, reject) => (answerLost = reject));
    lostAnswer.catch(() => undefined);
    const queue = m.release ? this.deps.queue : this.deps.namespaceQueue;
    const work = queue.run(`${m.namespace}/${m.release}`, async () => {
      if (call.signal.aborted) throw new PaasError("unavailable", "the call was cancelled before it started");
      const lease = await this.deps.locks.acquire({ namespace: m.namespace, release: m.release }, id, deadline, call.signal);
      const lostMessage = `lost the Lease of ${m.namespace}/${m.release || "(namespace)"} (Kubernetes API unreachable); helm was sent SIGTERM`;
      lease.lost.addEventListener("abort", () => {
        setTimeout(() => answerLost(new PaasError("unavailable", `${lostMessage} and is still stopping; its outcome will be in the audit log`)), this.deps.lostAnswerGraceMs ?? 5000).unref();
      }, { once: true });
      let before = 0;
      let res: MessageShape<Res> | undefined;
      let failure: unknown;
      try {
        if (m.release && m.repairFirst !== false) await this.repairHeld(m.namespace, m.release, id, call);
        before = await this.revisionOf(m.namespace, m.release);
        const signal = m.stoppableOnShutdown ? AbortSignal.any([lease.lost, lifecycle.helmSignal]) : lease.lost;
        try {
          res = await m.run({ id, call, signal, labels: this.labelsOf(call.caller, id) });
        } catch (err) {
          if (lease.lost.aborted) throw new PaasError("unavailable", lostMessage, { cause: err });
          // helm stopped by SIGTERM may leave the release pending: mark it failed now, while
          // this operation still holds the release, instead of waiting for recovery.
          if (m.release) await this.quietly(() => this.repairHeld(m.namespace, m.release, id, call), "repairing after a failed operation");
          throw err;
        }
        return res;
      } catch (err) {
        failure = err;
        throw err;
      } finally {
        const after = await this.revisionOf(m.namespace, m.release).catch(() => 0);
        // The outcome is durable before the Lease is given up: whoever takes the release next
        // sees this operation closed.
        await writeOutcome(res, failure, before, after);
        await lease.release();
      }
    }, { deadline, label: `${this.deps.replica}/${id}` }).then(
      async (result) => {
        if (claimed) await this.quietly(() => audit.completeIdempotency(call.caller, call.idempotencyKey, id, { ok: true, response: toJsonString(m.response, result) }), "storing an idempotent result");
        return result;
      },
      async (err: unknown) => {
        if (!outcomeWritten) await writeOutcome(undefined, err, 0, 0);
        if (claimed) {
          const failure = describeError(err);
          if (TRANSIENT.has(failure.kind)) await this.quietly(() => audit.abandonIdempotency(call.caller, call.idempotencyKey, id), "freeing an idempotency key");
          else await this.quietly(() => audit.completeIdempotency(call.caller, call.idempotencyKey, id, { ok: false, ...failure }), "storing an idempotent result");
        }
        throw err;
      },
    );
    // The work goes on after an early answer; its failure is recorded above, not lost.
    work.catch(() => undefined);
    return Promise.race([work, lostAnswer]);
  }

  /**
   * repairHeld marks a pending release failed and records it; the caller holds the release's
   * Lease, so no live operation can be running helm on it. Open intents of dead replicas on
   * the release are closed as recovered; a repair with none to close gets its own record.
   */
  async repairHeld(namespace: string, release: string, operationId: string, call: Pick<Call, "caller" | "sourceIp" | "userAgent" | "requestId">): Promise<PendingRevision | undefined> {
    const fixed = await this.deps.recovery.markPendingFailed(
      namespace,
      release,
      `Interrupted: the operation that set this revision pending ended without finishing; marked failed by operation ${operationId}`,
    );
    if (!fixed) return undefined;
    this.deps.logger.warn({ namespace, release, revision: fixed.revision, status: fixed.status, operation: operationId }, "recovered a release left pending by a dead operation");
    const note = `revision ${fixed.revision} was ${fixed.status}${fixed.since ? ` since ${fixed.since.toISOString()}` : ""}; marked failed`;
    const closed = await this.closeOrphans((i) => i.namespace === namespace && i.release === release, fixed.revision, note);
    if (closed === 0) {
      await this.deps.audit.append({
        ...emptyRecord(),
        id: newAuditId(),
        time: new Date(),
        stage: "outcome",
        outcome: "recovered",
        operationId: newOperationId(),
        caller: call.caller,
        sourceIp: call.sourceIp,
        userAgent: call.userAgent,
        requestId: call.requestId,
        method: "paas.v1.ReleaseService/RecoverRelease",
        namespace,
        release,
        revisionBefore: fixed.revision,
        revisionAfter: fixed.revision,
        errorMessage: note,
        replica: this.deps.replica,
      });
    }
    return fixed;
  }

  /**
   * closeOrphans closes, as recovered, the open intents of dead replicas (no heartbeat within
   * replicaTtlMs) that `which` accepts; `which` is only asked about those. Returns how many
   * it closed.
   */
  async closeOrphans(which: (intent: AuditRecord) => boolean | Promise<boolean>, revision: number | undefined, note: string): Promise<number> {
    const { audit } = this.deps;
    const open = await audit.openIntents();
    if (open.length === 0) return 0;
    const live = await audit.liveReplicas(this.deps.replicaTtlMs);
    live.add(this.deps.replica);
    let closed = 0;
    for (const intent of open) {
      if (live.has(intent.replica) || !(await which(intent))) continue;
      const after = revision ?? (intent.release ? await this.revisionOf(intent.namespace, intent.release) : 0);
      const written = await audit.append({
        ...intent,
        id: newAuditId(),
        time: new Date(),
        stage: "outcome",
        outcome: "recovered",
        revisionAfter: after,
        durationMs: Date.now() - intent.time.getTime(),
        errorCode: "",
        errorMessage: `the replica running it (${intent.replica}) stopped before it finished; ${note}`,
        replica: this.deps.replica,
      });
      if (written === "written") closed++;
    }
    return closed;
  }

  private async revisionOf(namespace: string, release: string): Promise<number> {
    if (!release) return 0;
    return (await this.deps.recovery.newestRevision(namespace, release))?.revision ?? 0;
  }

  private labelsOf(caller: string, id: string): Record<string, string> {
    const labels: Record<string, string> = { [OPERATION_LABEL]: id };
    const value = labelValue(caller);
    if (value) labels[CALLER_LABEL] = value;
    return labels;
  }

  private baseRecord(m: Mutation<DescMessage, DescMessage>, call: Call, id: string): Omit<AuditRecord, "id" | "time" | "stage"> {
    return {
      ...emptyRecord(),
      operationId: id,
      caller: call.caller,
      sourceIp: call.sourceIp,
      userAgent: call.userAgent,
      method: m.method,
      namespace: m.namespace,
      release: m.release,
      chartReference: m.chartReference ?? "",
      chartVersion: m.chartVersion ?? "",
      valuesSha256: valuesDigest(m.values),
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

/** emptyRecord is an audit record with every optional field blank. */
export function emptyRecord(): Omit<AuditRecord, "id" | "time" | "stage" | "operationId" | "method" | "replica"> {
  return {
    caller: "",
    sourceIp: "",
    userAgent: "",
    namespace: "",
    release: "",
    chartReference: "",
    chartVersion: "",
    valuesSha256: "",
    idempotencyKey: "",
    revisionBefore: 0,
    revisionAfter: 0,
    durationMs: 0,
    errorCode: "",
    errorMessage: "",
    requestId: "",
  };
}

/** fingerprintOf identifies a request for idempotency: the method and its canonical JSON without the key. */
export function fingerprintOf<D extends DescMessage>(method: string, schema: D, message: MessageShape<D>): string {
  const copy = clone(schema, message) as Record<string, unknown>;
  if ("idempotencyKey" in copy) copy.idempotencyKey = "";
  return sha256Hex(`${method}\n${canonicalJson(toJson(schema, copy as MessageShape<D>))}`);
}

function replay<D extends DescMessage>(schema: D, result: StoredResult): MessageShape<D> {
  if (result.ok) return fromJsonString(schema, result.response);
  throw new PaasError(result.kind as ErrorKind, result.message, result.reason ? { reason: result.reason as ErrorReason } : {});
}

function describeError(err: unknown): { kind: ErrorKind; message: string; reason?: string } {
  if (err instanceof PaasError) return { kind: err.kind, message: err.message, ...(err.reason ? { reason: err.reason } : {}) };
  // Anything else is sanitized to INTERNAL by the observability interceptor; record it the same way.
  return { kind: "internal", message: "internal error" };
}
