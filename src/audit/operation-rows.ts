import { PaasError } from "../errors.ts";
import type {
  OperationQuery,
  OperationRecord,
  OperationState,
  ProgressRecord,
  StepRecord,
} from "../domain/operation.ts";
import { MAX_PAGE_SIZE } from "./audit-rows.ts";
import { decodePageToken, encodePageToken, type PagePosition } from "./page-token.ts";

// What the SQLite and PostgreSQL stores share for the operations table: the JSON columns,
// reading a row, checking a query and cutting a page. Times are decoded by each store.

export const OPERATION_STATES: readonly OperationState[] = ["queued", "running", "succeeded", "failed", "cancelled"];

/** CheckedOperationQuery is an OperationQuery whose page size, state and token were validated. */
export interface CheckedOperationQuery extends OperationQuery {
  after: PagePosition | undefined;
}

/** checkOperationQuery validates what SQL cannot express; failures are invalid_argument. */
export function checkOperationQuery(query: OperationQuery): CheckedOperationQuery {
  if (!Number.isInteger(query.pageSize) || query.pageSize < 1 || query.pageSize > MAX_PAGE_SIZE) {
    throw new PaasError("invalid_argument", `page_size must be between 1 and ${MAX_PAGE_SIZE}`);
  }
  if (query.state !== undefined && !OPERATION_STATES.includes(query.state))
    throw new PaasError("invalid_argument", `state "${String(query.state)}" is unknown`);
  if (query.since !== undefined && !Number.isFinite(query.since.getTime()))
    throw new PaasError("invalid_argument", "since is not a valid time");
  return { ...query, after: query.pageToken ? decodePageToken(query.pageToken) : undefined };
}

/** stepsJson is the steps column: times as ISO strings. */
export function stepsJson(steps: StepRecord[]): string {
  return JSON.stringify(steps);
}

export function progressJson(progress: ProgressRecord | undefined): string | null {
  return progress ? JSON.stringify(progress) : null;
}

function parseSteps(text: unknown): StepRecord[] {
  if (typeof text !== "string" || text === "") return [];
  return (
    JSON.parse(text) as Array<Omit<StepRecord, "startedAt" | "finishedAt"> & { startedAt: string; finishedAt?: string }>
  ).map(({ startedAt, finishedAt, ...rest }) => ({
    ...rest,
    startedAt: new Date(startedAt),
    ...(finishedAt ? { finishedAt: new Date(finishedAt) } : {}),
  }));
}

/** Times is how a store decodes the time columns of one row. */
export interface RowTimes {
  createdAt: Date;
  startedAt?: Date;
  finishedAt?: Date;
  updatedAt: Date;
}

/** operationFromRow reads an operations row (the same snake_case columns in both stores). */
export function operationFromRow(r: Record<string, unknown>, times: RowTimes): OperationRecord {
  const op: OperationRecord = {
    id: String(r.id),
    kind: String(r.kind),
    method: String(r.method),
    namespace: String(r.namespace),
    release: String(r.release_name),
    caller: String(r.caller),
    idempotencyKey: String(r.idempotency_key),
    state: r.state as OperationState,
    createdAt: times.createdAt,
    steps: parseSteps(r.steps),
    request: String(r.request ?? ""),
    params: JSON.parse(String(r.params || "{}")) as OperationRecord["params"],
    response: String(r.response ?? ""),
    responseType: String(r.response_type),
    replica: String(r.replica),
    cancelRequested: Boolean(Number(r.cancel_requested ?? 0)) || r.cancel_requested === true,
    updatedAt: times.updatedAt,
  };
  if (times.startedAt) op.startedAt = times.startedAt;
  if (times.finishedAt) op.finishedAt = times.finishedAt;
  if (typeof r.progress === "string" && r.progress) op.progress = JSON.parse(r.progress) as ProgressRecord;
  if (r.error_code)
    op.error = {
      code: String(r.error_code),
      message: String(r.error_message ?? ""),
      reason: String(r.error_reason ?? ""),
    };
  return op;
}

/** operationPage cuts up to pageSize + 1 operations, newest first, into a page. */
export function operationPage(
  ops: OperationRecord[],
  pageSize: number,
): { operations: OperationRecord[]; nextPageToken: string } {
  const page = ops.slice(0, pageSize);
  const last = page.at(-1);
  return {
    operations: page,
    nextPageToken:
      ops.length > pageSize && last ? encodePageToken({ timeMs: last.createdAt.getTime(), id: last.id }) : "",
  };
}
