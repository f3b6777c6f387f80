import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AuditEventSchema, AuditOutcome, AuditStage, type AuditEvent } from "../../gen/paas/v1/audit_pb.js";
import type { AuditOutcome as StoredOutcome, AuditRecord, AuditStage as StoredStage } from "../domain/audit.ts";

const stageOf: Record<StoredStage, AuditStage> = {
  intent: AuditStage.INTENT,
  outcome: AuditStage.OUTCOME,
};

const outcomeOf: Record<StoredOutcome, AuditOutcome> = {
  succeeded: AuditOutcome.SUCCEEDED,
  failed: AuditOutcome.FAILED,
  recovered: AuditOutcome.RECOVERED,
  denied: AuditOutcome.DENIED,
};

/**
 * toAuditEvent maps one stored audit record to the API message. A stage or outcome the API
 * does not know (a newer replica's record in a shared store) becomes UNSPECIFIED rather than
 * failing the whole page.
 */
export function toAuditEvent(r: AuditRecord): AuditEvent {
  return create(AuditEventSchema, {
    id: r.id,
    time: timestampFromDate(r.time),
    stage: stageOf[r.stage] ?? AuditStage.UNSPECIFIED,
    outcome: r.outcome === undefined ? AuditOutcome.UNSPECIFIED : (outcomeOf[r.outcome] ?? AuditOutcome.UNSPECIFIED),
    operationId: r.operationId,
    caller: r.caller,
    sourceIp: r.sourceIp,
    userAgent: r.userAgent,
    method: r.method,
    namespace: r.namespace,
    release: r.release,
    chartReference: r.chartReference,
    chartVersion: r.chartVersion,
    valuesSha256: r.valuesSha256,
    idempotencyKey: r.idempotencyKey,
    revisionBefore: r.revisionBefore,
    revisionAfter: r.revisionAfter,
    durationMs: BigInt(Number.isFinite(r.durationMs) ? Math.max(0, Math.round(r.durationMs)) : 0),
    errorCode: r.errorCode,
    errorMessage: r.errorMessage,
    replica: r.replica,
    requestId: r.requestId,
  });
}
