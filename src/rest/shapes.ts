import { toJson, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { JsonObject, JsonValue } from "../domain/release.ts";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { AuditEventSchema, type AuditEvent } from "../../gen/paas/v1/audit_pb.js";
import { OperationSchema, OperationState, StepState, type Operation } from "../../gen/paas/v1/operation_pb.js";
import type { PodStatus, Release, Revision } from "../../gen/paas/v1/release_pb.js";
import type { Namespace } from "../../gen/paas/v1/namespace_pb.js";
import {
  ListWebhookDeliveriesResponseSchema,
  ListWebhookSubscriptionsResponseSchema,
  RedeliverWebhookResponseSchema,
  type ListWebhookDeliveriesResponse,
  type ListWebhookSubscriptionsResponse,
  type RedeliverWebhookResponse,
} from "../../gen/paas/v1/webhook_pb.js";
import { helmStatus } from "../mapping/release-mapping.ts";

// The JSON the old FastAPI operator returned: snake_case keys, Helm's own lowercase status
// strings, ISO 8601 times. Fields it did not have come after its own (extras are fine for
// its callers; missing or renamed ones are not).

/** iso renders a Timestamp as ISO 8601 (UTC, milliseconds), or null when absent. */
export function iso(ts: Timestamp | undefined): string | null {
  return ts ? timestampDate(ts).toISOString() : null;
}

/** restRelease is a release as the old operator returned it. */
export function restRelease(r: Release | undefined): JsonObject | null {
  if (!r) return null;
  return {
    name: r.name,
    namespace: r.namespace,
    revision: r.revision,
    status: helmStatus(r.status),
    chart: r.chart,
    app_version: r.appVersion,
    updated: iso(r.updated),
    description: r.description,
    values: r.values ?? {},
    // Extras.
    chart_version: r.chartVersion,
    notes: r.notes,
    chart_reference: r.chartReference,
    repo_url: r.repoUrl,
  };
}

/** restRevision is one entry of `helm history`. */
export function restRevision(r: Revision): JsonObject {
  return {
    revision: r.revision,
    updated: iso(r.updated),
    status: helmStatus(r.status),
    chart: r.chart,
    app_version: r.appVersion,
    description: r.description,
  };
}

/** restPod is one pod of a release; phase as Kubernetes writes it ("Running"). */
export function restPod(p: PodStatus): JsonObject {
  return {
    name: p.name,
    phase: p.phase,
    ready: p.ready,
    restarts: p.restarts,
    age: p.age,
    // Extras.
    ready_containers: p.readyContainers,
    total_containers: p.totalContainers,
    pod_ready: p.podReady,
    started: iso(p.started),
    reasons: p.reasons,
    node: p.node,
  };
}

/** restNamespace is a managed namespace with its quota. */
export function restNamespace(n: Namespace | undefined): JsonObject | null {
  if (!n) return null;
  return {
    name: n.name,
    phase: n.phase,
    created: iso(n.created),
    quota: n.quota.map((q) => ({ resource: q.resource, hard: q.hard, used: q.used })),
  };
}

/**
 * restAuditEvent is one audit record. The old operator had no audit log, so there is no old
 * shape: it is the message's proto3 JSON with proto field names (snake_case) and every field
 * present (enums by name, `duration_ms` as a string as proto3 JSON writes int64), except that
 * `time` is written like every other REST time (ISO 8601 with milliseconds; null if absent).
 * New proto fields appear here without a change, as they do in the OpenAPI document.
 */
export function restAuditEvent(e: AuditEvent): JsonObject {
  const json = toJson(AuditEventSchema, e, { useProtoFieldName: true, alwaysEmitImplicit: true }) as JsonObject;
  return { ...json, time: iso(e.time) };
}

/** orNull turns the proto3 empty string ("not set") into the null pydantic's Optional[str] gave. */
export function orNull(s: string): JsonValue {
  return s === "" ? null : s;
}

/**
 * restOperation is an operation as /api/operations answers it: the message's proto3 JSON
 * with proto field names and every field present, times as ISO 8601 (null when absent).
 */
export function restOperation(o: Operation | undefined): JsonObject | null {
  if (!o) return null;
  const json = toJson(OperationSchema, o, { useProtoFieldName: true, alwaysEmitImplicit: true }) as JsonObject;
  return {
    ...json,
    created_at: iso(o.createdAt),
    started_at: iso(o.startedAt),
    finished_at: iso(o.finishedAt),
    steps: o.steps.map((s, i) => ({
      ...((json.steps as JsonObject[])[i] ?? {}),
      started_at: iso(s.startedAt),
      finished_at: iso(s.finishedAt),
    })),
  };
}

const JOB_STATUS: Record<OperationState, string> = {
  [OperationState.UNSPECIFIED]: "pending",
  [OperationState.QUEUED]: "pending",
  [OperationState.RUNNING]: "running",
  [OperationState.SUCCEEDED]: "success",
  [OperationState.FAILED]: "failed",
  [OperationState.CANCELLED]: "failed",
};

/** JOB_TYPE: the ops API's names of job types, where they differ from the operation's kind. */
const JOB_TYPE: Record<string, string> = { "rebuild-statefulset-member": "pg-rebuild" };

/** restJobAccepted is the ops API's answer to a job it started (POST /ops/jobs/pg-rebuild): {job_id, status}. */
export function restJobAccepted(m: { operationId: string; operation?: Operation | undefined }): JsonObject {
  return { job_id: m.operationId, status: JOB_STATUS[m.operation?.state ?? OperationState.QUEUED] };
}

/**
 * restMessage is a response as the ops API's paths answer it: the message's proto3 JSON with proto
 * field names and every implicit field present (new proto fields appear without a change).
 */
export function restMessage<D extends DescMessage>(schema: D, m: MessageShape<D>): JsonObject {
  return toJson(schema, m, { useProtoFieldName: true, alwaysEmitImplicit: true }) as JsonObject;
}

const JOB_STEP_STATUS: Record<StepState, string> = {
  [StepState.UNSPECIFIED]: "pending",
  [StepState.RUNNING]: "running",
  [StepState.SUCCEEDED]: "success",
  [StepState.FAILED]: "failed",
  [StepState.CANCELLED]: "failed",
};

/**
 * restJob is an operation in the ops API's job shape (GET /ops/jobs/{job_id}), for the pollers
 * of that API: {job_id, type, status (pending|running|success|failed), created_at,
 * finished_at, params, steps[{name, order, status, detail, started_at, finished_at}]}. A
 * cancelled operation is "failed" there, with the reason in `error`; params hold the values
 * only as their SHA-256.
 */
export function restJob(o: Operation | undefined): JsonObject | null {
  if (!o) return null;
  return {
    job_id: o.id,
    type: JOB_TYPE[o.kind] ?? o.kind,
    status: JOB_STATUS[o.state],
    created_at: iso(o.createdAt),
    finished_at: iso(o.finishedAt),
    params: o.params ?? {},
    steps: o.steps.map((s) => ({
      name: s.name,
      order: s.order,
      status: JOB_STEP_STATUS[s.state],
      detail: s.detail,
      started_at: iso(s.startedAt),
      finished_at: iso(s.finishedAt),
    })),
    // Extras.
    error: o.error ? { code: o.error.code, message: o.error.message, reason: o.error.reason } : null,
    namespace: o.namespace,
    release: o.release,
  };
}

const PROTO_NAMES = { useProtoFieldName: true, alwaysEmitImplicit: true } as const;

/** The webhook RPCs answer their response messages' JSON with proto field names. */
export function restWebhookSubscriptions(m: ListWebhookSubscriptionsResponse): JsonValue {
  return toJson(ListWebhookSubscriptionsResponseSchema, m, PROTO_NAMES) as JsonValue;
}

export function restWebhookDeliveries(m: ListWebhookDeliveriesResponse): JsonValue {
  return toJson(ListWebhookDeliveriesResponseSchema, m, PROTO_NAMES) as JsonValue;
}

export function restWebhookRedelivered(m: RedeliverWebhookResponse): JsonValue {
  return toJson(RedeliverWebhookResponseSchema, m, PROTO_NAMES) as JsonValue;
}
