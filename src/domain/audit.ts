/**
 * The audit log and the idempotency keys share one store: SQLite through node:sqlite for a
 * single replica (AUDIT_SQLITE_PATH), PostgreSQL for several (AUDIT_DATABASE_URL).
 * Every method rejects with PaasError("unavailable", …) when the store cannot be reached,
 * with a message that names no credentials.
 */

import type { OperationStore } from "./operation.ts";
import type { WebhookStore } from "./webhook.ts";

export type AuditStage = "intent" | "outcome";
export type AuditOutcome = "succeeded" | "failed" | "recovered" | "denied";

/** AuditRecord is one row of the audit log; intent and outcome of one operation share operationId. */
export interface AuditRecord {
  /** Unique, sortable with time (see newAuditId). */
  id: string;
  time: Date;
  stage: AuditStage;
  /** Set on outcome records only. */
  outcome?: AuditOutcome;
  operationId: string;
  /** API key id; "" when no key was accepted. */
  caller: string;
  sourceIp: string;
  userAgent: string;
  /** "paas.v1.ReleaseService/UpgradeRelease" */
  method: string;
  namespace: string;
  /** "" for namespace operations. */
  release: string;
  chartReference: string;
  chartVersion: string;
  /** SHA-256 hex of the values as canonical JSON; "" when the call has no values. */
  valuesSha256: string;
  idempotencyKey: string;
  revisionBefore: number;
  revisionAfter: number;
  durationMs: number;
  /** Error kind / gRPC code name of a failure, "" on success. */
  errorCode: string;
  errorMessage: string;
  /** The replica (process) that wrote the record. */
  replica: string;
  requestId: string;
}

/** AuditVisibility limits what a scoped caller may list: exact namespaces and name prefixes. */
export interface AuditVisibility {
  exact: string[];
  prefixes: string[];
}

export interface AuditQuery {
  namespace?: string;
  release?: string;
  caller?: string;
  operationId?: string;
  /** time >= since */
  since?: Date;
  /** time < until */
  until?: Date;
  /** Absent: every record. Present: only records whose namespace matches (records without a namespace are hidden). */
  visibility?: AuditVisibility;
  /** 1..1000 */
  pageSize: number;
  /** Opaque token from a previous page's nextPageToken. A malformed token rejects with PaasError("invalid_argument"). */
  pageToken?: string;
}

export interface AuditPage {
  /** Newest first (time desc, id desc). */
  records: AuditRecord[];
  /** "" on the last page. */
  nextPageToken: string;
}

/** StoredResult is what an idempotent retry gets back: the first execution's response or error. */
export type StoredResult =
  | { ok: true; /** the response message as proto3 JSON text */ response: string }
  | { ok: false; /** ErrorKind of the PaasError */ kind: string; message: string; reason?: string };

export interface IdempotencyClaimRequest {
  caller: string;
  key: string;
  /** SHA-256 hex of the method + canonical request (idempotency key field excluded). */
  fingerprint: string;
  operationId: string;
  method: string;
  /** The claim expires this long after it was made. */
  ttlMs: number;
}

export type IdempotencyClaim =
  /** The key was free (or expired): the caller now owns it and must complete or abandon it. */
  | { state: "claimed" }
  /** Same key, same fingerprint, first execution still running. */
  | { state: "running"; operationId: string }
  /** Same key, another fingerprint (whatever the state of the first). */
  | { state: "mismatch"; operationId: string }
  /** Same key, same fingerprint, first execution finished. */
  | { state: "done"; operationId: string; result: StoredResult };

export interface AuditStore extends OperationStore, WebhookStore {
  /** Creates or migrates the schema; idempotent, safe when several replicas start at once. */
  migrate(): Promise<void>;
  /**
   * append writes one record durably (committed before it resolves). An outcome for an
   * operationId that already has an outcome is not written: "duplicate" (nothing recorded twice).
   */
  append(record: AuditRecord): Promise<"written" | "duplicate">;
  list(query: AuditQuery): Promise<AuditPage>;
  /** Intents without an outcome, oldest first. */
  openIntents(): Promise<AuditRecord[]>;
  /** heartbeat records that `replica` is alive now. */
  heartbeat(replica: string): Promise<void>;
  /** Replicas whose last heartbeat is newer than ttlMs ago (by the store's clock). */
  liveReplicas(ttlMs: number): Promise<Set<string>>;
  claimIdempotency(req: IdempotencyClaimRequest): Promise<IdempotencyClaim>;
  /** Stores the result of the claimed key's execution (only by the operation that claimed it). */
  completeIdempotency(caller: string, key: string, operationId: string, result: StoredResult): Promise<void>;
  /** Frees a claimed key whose execution never started, so that a retry runs it (only by its operation). */
  abandonIdempotency(caller: string, key: string, operationId: string): Promise<void>;
  /** Deletes expired idempotency keys; returns how many. */
  purgeExpired(): Promise<number>;
  close(): Promise<void>;
  /** "sqlite" or "postgres", for logs and health. */
  readonly kind: string;
}
