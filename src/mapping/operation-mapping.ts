import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  OperationErrorSchema,
  OperationProgressSchema,
  OperationSchema,
  OperationState,
  OperationStepSchema,
  StepState,
  WorkloadProgressSchema,
  type Operation,
} from "../../gen/paas/v1/operation_pb.js";
import type { OperationRecord, OperationState as State, StepState as StepStateName } from "../domain/operation.ts";

const states: Record<State, OperationState> = {
  queued: OperationState.QUEUED,
  running: OperationState.RUNNING,
  succeeded: OperationState.SUCCEEDED,
  failed: OperationState.FAILED,
  cancelled: OperationState.CANCELLED,
};

const stepStates: Record<StepStateName, StepState> = {
  running: StepState.RUNNING,
  succeeded: StepState.SUCCEEDED,
  failed: StepState.FAILED,
  cancelled: StepState.CANCELLED,
};

/** stateFromProto is the store's name of an OperationState; undefined for UNSPECIFIED. */
export function stateFromProto(s: OperationState): State | undefined {
  return (Object.entries(states) as Array<[State, OperationState]>).find(([, v]) => v === s)?.[0];
}

/** toOperation maps a stored operation to paas.v1.Operation. */
export function toOperation(op: OperationRecord): Operation {
  const msg = create(OperationSchema, {
    id: op.id,
    kind: op.kind,
    method: op.method,
    namespace: op.namespace,
    release: op.release,
    caller: op.caller,
    idempotencyKey: op.idempotencyKey,
    state: states[op.state],
    createdAt: timestampFromDate(op.createdAt),
    steps: op.steps.map((s) =>
      create(OperationStepSchema, {
        name: s.name,
        order: s.order,
        state: stepStates[s.state],
        detail: s.detail,
        startedAt: timestampFromDate(s.startedAt),
        ...(s.finishedAt ? { finishedAt: timestampFromDate(s.finishedAt) } : {}),
      }),
    ),
    done: op.state === "succeeded" || op.state === "failed" || op.state === "cancelled",
    responseType: op.response ? op.responseType : "",
    replica: op.replica,
    params: op.params,
  });
  if (op.startedAt) msg.startedAt = timestampFromDate(op.startedAt);
  if (op.finishedAt) msg.finishedAt = timestampFromDate(op.finishedAt);
  if (op.progress) {
    msg.progress = create(OperationProgressSchema, {
      podsReady: op.progress.podsReady,
      podsDesired: op.progress.podsDesired,
      workloads: op.progress.workloads.map((w) =>
        create(WorkloadProgressSchema, { kind: w.kind, name: w.name, podsReady: w.ready, podsDesired: w.desired }),
      ),
    });
  }
  if (op.response) msg.response = JSON.parse(op.response) as JsonObject;
  if (op.error)
    msg.error = create(OperationErrorSchema, {
      code: op.error.code,
      message: op.error.message,
      reason: op.error.reason,
    });
  return msg;
}
