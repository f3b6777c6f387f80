import { PaasError } from "../errors.ts";
import { decodePageToken, encodePageToken, type PagePosition } from "./page-token.ts";
import type { AuditOutcome, AuditQuery, AuditRecord, StoredResult } from "../domain/audit.ts";

// What the SQLite and PostgreSQL stores share: argument checks, the unavailable error, the
// JSON form of stored results, reading a row and cutting a page.

export const MAX_PAGE_SIZE = 1000;

/** unavailable is the one error of an unreachable store; `reason` must name no credentials or URL. */
export function unavailable(reason: string, cause?: unknown): PaasError {
  return new PaasError("unavailable", `audit store unavailable: ${reason}`, cause === undefined ? {} : { cause });
}

/** CheckedQuery is an AuditQuery whose page size and token were validated. */
export interface CheckedQuery extends AuditQuery {
  after: PagePosition | undefined;
}

/** checkQuery validates what the stores cannot express in SQL; failures are invalid_argument. */
export function checkQuery(query: AuditQuery): CheckedQuery {
  const { pageSize } = query;
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) {
    throw new PaasError("invalid_argument", `page_size must be between 1 and ${MAX_PAGE_SIZE}`);
  }
  for (const [name, d] of [
    ["since", query.since],
    ["until", query.until],
  ] as const) {
    if (d !== undefined && !Number.isFinite(d.getTime()))
      throw new PaasError("invalid_argument", `${name} is not a valid time`);
  }
  return { ...query, after: query.pageToken ? decodePageToken(query.pageToken) : undefined };
}

/** checkRecord refuses records the schema would store wrongly (a programming error of the caller). */
export function checkRecord(r: AuditRecord): void {
  if (!(r.time instanceof Date) || !Number.isFinite(r.time.getTime()))
    throw new PaasError("invalid_argument", "audit record time is not a valid time");
  if (!r.id || !r.operationId) throw new PaasError("invalid_argument", "audit record needs an id and an operation id");
  if (r.stage !== "intent" && r.stage !== "outcome")
    throw new PaasError("invalid_argument", `audit record stage "${String(r.stage)}" is unknown`);
  if (r.outcome !== undefined && !OUTCOMES.includes(r.outcome))
    throw new PaasError("invalid_argument", `audit record outcome "${String(r.outcome)}" is unknown`);
  for (const n of [r.revisionBefore, r.revisionAfter, r.durationMs]) {
    if (!Number.isFinite(n))
      throw new PaasError("invalid_argument", "audit record revisions and duration must be finite numbers");
  }
}

const OUTCOMES: readonly string[] = ["succeeded", "failed", "recovered", "denied"] satisfies AuditOutcome[];

/** whole rounds the numeric fields for the INTEGER/BIGINT columns (a duration may come with a fraction). */
export function whole(n: number): number {
  return Math.round(n);
}

/** likePrefix turns a namespace prefix into a LIKE pattern (escape character \). */
export function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** visibleNothing: a visibility with neither exact namespaces nor prefixes shows no record at all. */
export function visibleNothing(q: AuditQuery): boolean {
  return q.visibility !== undefined && q.visibility.exact.length === 0 && q.visibility.prefixes.length === 0;
}

export function encodeResult(result: StoredResult): string {
  return JSON.stringify(result);
}

export function decodeResult(text: string | null | undefined): StoredResult {
  // A done key always has a result; the fallback only guards against a hand-edited row.
  if (!text) return { ok: false, kind: "internal", message: "the first execution's result was not stored" };
  return JSON.parse(text) as StoredResult;
}

/**
 * pageOf turns up to pageSize + 1 rows, newest first, into a page: the extra row only says
 * that there is more, and the token points after the page's last record.
 */
export function pageOf(records: AuditRecord[], pageSize: number): { records: AuditRecord[]; nextPageToken: string } {
  const page = records.slice(0, pageSize);
  const last = page.at(-1);
  return {
    records: page,
    nextPageToken:
      records.length > pageSize && last ? encodePageToken({ timeMs: last.time.getTime(), id: last.id }) : "",
  };
}

/** recordFromRow reads an audit_events row (snake_case columns, the same in both stores); `time` is decoded by the store. */
export function recordFromRow(r: Record<string, unknown>, time: Date): AuditRecord {
  const record: AuditRecord = {
    id: String(r.id),
    time,
    stage: r.stage as AuditRecord["stage"],
    operationId: String(r.operation_id),
    caller: String(r.caller),
    sourceIp: String(r.source_ip),
    userAgent: String(r.user_agent),
    method: String(r.method),
    namespace: String(r.namespace),
    release: String(r.release_name),
    chartReference: String(r.chart_reference),
    chartVersion: String(r.chart_version),
    valuesSha256: String(r.values_sha256),
    idempotencyKey: String(r.idempotency_key),
    revisionBefore: Number(r.revision_before),
    revisionAfter: Number(r.revision_after),
    durationMs: Number(r.duration_ms),
    errorCode: String(r.error_code),
    errorMessage: String(r.error_message),
    replica: String(r.replica),
    requestId: String(r.request_id),
  };
  if (r.outcome !== null && r.outcome !== undefined) record.outcome = r.outcome as AuditRecord["outcome"];
  return record;
}
