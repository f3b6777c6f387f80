import type { Logger } from "pino";
import { newAuditId, newOperationId } from "../audit/ids.ts";
import type { AuditRecord, AuditStore } from "../domain/audit.ts";
import type { Call } from "./call.ts";
import { emptyRecord } from "./audit-records.ts";
import { TERMINAL } from "../domain/operation.ts";
import type { PendingRevision, ReleaseRecovery } from "../domain/ports.ts";
import { metrics } from "../metrics/metrics.ts";

export interface ReleaseRepairDeps {
  audit: AuditStore;
  /** Repairs stuck releases; also reads revision numbers from the storage metadata. */
  recovery: ReleaseRecovery;
  replica: string;
  /** A replica whose heartbeat is older than this is dead; its open intents may be closed. */
  replicaTtlMs: number;
  logger: Logger;
}

/**
 * ReleaseRepair repairs releases left pending by dead operations and closes what those
 * operations left open in the audit log. Used by the engine (before and after each
 * operation, holding the release's Lease) and by the reconciler.
 */
export class ReleaseRepair {
  private readonly deps: ReleaseRepairDeps;

  constructor(deps: ReleaseRepairDeps) {
    this.deps = deps;
  }

  /**
   * repairHeld marks a pending release failed and records it; the caller holds the release's
   * Lease, so no live operation can be running helm on it. Open intents of dead replicas on
   * the release are closed as recovered; a repair with none to close gets its own record.
   */
  async repairHeld(
    namespace: string,
    release: string,
    operationId: string,
    call: Pick<Call, "caller" | "sourceIp" | "userAgent" | "requestId">,
  ): Promise<PendingRevision | undefined> {
    const fixed = await this.deps.recovery.markPendingFailed(
      namespace,
      release,
      `Interrupted: the operation that set this revision pending ended without finishing; marked failed by operation ${operationId}`,
    );
    if (!fixed) return undefined;
    metrics.releasesRepaired.inc();
    this.deps.logger.warn(
      { namespace, release, revision: fixed.revision, status: fixed.status, operation: operationId },
      "recovered a release left pending by a dead operation",
    );
    const note = `revision ${fixed.revision} was ${fixed.status}${fixed.since ? ` since ${fixed.since.toISOString()}` : ""}; marked failed`;
    const closed = await this.closeOrphans(
      (i) => i.namespace === namespace && i.release === release,
      fixed.revision,
      note,
    );
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
   * replicaTtlMs) that `which` accepts; `which` is only asked about those. Their operations,
   * if still running, end FAILED naming the step they died in. Returns how many it closed.
   */
  async closeOrphans(
    which: (intent: AuditRecord) => boolean | Promise<boolean>,
    revision: number | undefined,
    note: string,
  ): Promise<number> {
    const { audit } = this.deps;
    const open = await audit.openIntents();
    if (open.length === 0) return 0;
    const live = await audit.liveReplicas(this.deps.replicaTtlMs);
    live.add(this.deps.replica);
    let closed = 0;
    for (const intent of open) {
      if (live.has(intent.replica)) continue;
      const op = await audit.getOperation(intent.operationId);
      // Queued: a live replica adopts and runs it (src/operations/engine.ts adopt). Adopted
      // already: it is that replica's to end.
      if (op && (op.state === "queued" || (op.replica !== intent.replica && !TERMINAL.has(op.state)))) continue;
      if (!(await which(intent))) continue;
      const after = revision ?? (await this.revisionOf(intent.namespace, intent.release));
      const message = `the replica running it (${intent.replica}) stopped before it finished; ${note}`;
      const outcome: AuditRecord = {
        ...intent,
        id: newAuditId(),
        time: new Date(),
        stage: "outcome",
        outcome: "recovered",
        revisionAfter: after,
        durationMs: Date.now() - intent.time.getTime(),
        errorCode: "",
        errorMessage: message,
        replica: this.deps.replica,
      };
      if (op && op.state === "running") {
        // The operation ends with its outcome, in one transaction.
        const step = op.steps.findLast((s) => s.state === "running");
        const steps = op.steps.map((s) =>
          s.state === "running" ? { ...s, state: "failed" as const, finishedAt: new Date() } : s,
        );
        const died = step ? `; it died in step "${step.name}"` : "";
        const ended = await audit.finishOperation(
          op.id,
          {
            state: "failed",
            finishedAt: new Date(),
            steps,
            ...(op.progress ? { progress: op.progress } : {}),
            error: { code: "ABORTED", message: `${message}${died}`, reason: "REPLICA_LOST" },
          },
          outcome,
          ["running"],
        );
        if (ended) closed++;
        continue;
      }
      if ((await audit.append(outcome)) === "written") closed++;
    }
    return closed;
  }

  /** newest is the newest revision and its status, from the storage metadata; undefined when there is no release. */
  newest(namespace: string, release: string): Promise<{ revision: number; status: string } | undefined> {
    return this.deps.recovery.newestRevision(namespace, release);
  }

  async revisionOf(namespace: string, release: string): Promise<number> {
    if (!release) return 0;
    return (await this.deps.recovery.newestRevision(namespace, release))?.revision ?? 0;
  }
}
