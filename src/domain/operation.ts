import type { AuditRecord, AuditVisibility } from "./audit.ts";

// An operation as the store keeps it: every mutation is one, from the moment it is
// accepted (queued) to its end. The store is the audit store (SQLite or PostgreSQL), so the
// operation, its audit intent and its outcome are written in the same transactions.

export type OperationState = "queued" | "running" | "succeeded" | "failed" | "cancelled";
export type StepState = "running" | "succeeded" | "failed" | "cancelled";

/** TERMINAL are the states an operation never leaves. */
export const TERMINAL: ReadonlySet<OperationState> = new Set(["succeeded", "failed", "cancelled"]);

/** StepRecord is one named step; steps that did not run are absent. */
export interface StepRecord {
  name: string;
  /** 1, 2, … in the order the steps started. */
  order: number;
  state: StepState;
  detail: string;
  startedAt: Date;
  finishedAt?: Date;
}

/** WorkloadCount counts the pods of one workload of the release. */
export interface WorkloadCount {
  kind: string;
  name: string;
  ready: number;
  desired: number;
}

/** ProgressRecord is how far the release's pods are while an operation waits for them. */
export interface ProgressRecord {
  podsReady: number;
  podsDesired: number;
  workloads: WorkloadCount[];
}

/** OperationFailure is why an operation failed or was cancelled. */
export interface OperationFailure {
  /** gRPC code name, e.g. "FAILED_PRECONDITION". */
  code: string;
  message: string;
  reason: string;
}

/** OperationRecord is one operation as stored. */
export interface OperationRecord {
  /** The id of the audit records, Helm's paas-operation label and the idempotency key. */
  id: string;
  /** "install", "upgrade", … (the verb's name). */
  kind: string;
  /** "paas.v1.ReleaseService/InstallRelease" */
  method: string;
  namespace: string;
  /** "" for namespace operations. */
  release: string;
  caller: string;
  idempotencyKey: string;
  state: OperationState;
  createdAt: Date;
  startedAt?: Date;
  finishedAt?: Date;
  steps: StepRecord[];
  progress?: ProgressRecord;
  /**
   * The request as proto JSON, kept while the operation has not ended so that another replica
   * (or this one after a restart) can run a queued operation; emptied when it ends.
   */
  request: string;
  /** The request's parameters as the ops-API job shape shows them: values only as a SHA-256. */
  params: Record<string, string | number | boolean>;
  /** On success: the response message as proto JSON. */
  response: string;
  /** The response message's type name, e.g. "paas.v1.InstallReleaseResponse". */
  responseType: string;
  error?: OperationFailure;
  /** The replica that owns it: runs it, or will. */
  replica: string;
  /** CancelOperation asked a running operation on another replica to stop. */
  cancelRequested: boolean;
  /** Changed with every write: lets a watcher on another replica see a change. */
  updatedAt: Date;
}

/** OperationQuery filters ListOperations; newest first. */
export interface OperationQuery {
  namespace?: string;
  release?: string;
  state?: OperationState;
  kind?: string;
  /** createdAt >= since */
  since?: Date;
  visibility?: AuditVisibility;
  /** 1..1000 */
  pageSize: number;
  pageToken?: string;
}

export interface OperationPage {
  operations: OperationRecord[];
  nextPageToken: string;
}

/** OperationEnd is what finishOperation writes. */
export interface OperationEnd {
  state: "succeeded" | "failed" | "cancelled";
  finishedAt: Date;
  steps: StepRecord[];
  progress?: ProgressRecord;
  response?: string;
  error?: OperationFailure;
}

/**
 * OperationStore keeps operations durably, shared by every replica (the audit store
 * implements it). Transitions are compare-and-set, so an operation is started once and ends
 * once whatever the replicas race for. Every method rejects with PaasError("unavailable")
 * when the store cannot be reached.
 */
export interface OperationStore {
  /** Writes the queued operation and its audit intent in one transaction. */
  createOperation(op: OperationRecord, intent: AuditRecord): Promise<void>;
  getOperation(id: string): Promise<OperationRecord | undefined>;
  listOperations(query: OperationQuery): Promise<OperationPage>;
  /** queued → running, if it is still queued and owned by `replica`; false otherwise (cancelled, adopted by another). */
  startOperation(id: string, replica: string, at: Date): Promise<boolean>;
  /** Saves steps and progress of an operation that has not ended. */
  saveProgress(id: string, steps: StepRecord[], progress: ProgressRecord | undefined): Promise<void>;
  /**
   * Ends the operation (if it is in one of `from`, default queued or running) and appends its
   * audit outcome, in one transaction; false when it had ended already (nothing written).
   */
  finishOperation(
    id: string,
    end: OperationEnd,
    outcome: AuditRecord | undefined,
    from?: OperationState[],
  ): Promise<boolean>;
  /** Marks a running operation to be stopped by the replica that runs it. */
  requestCancel(id: string): Promise<void>;
  /** Of these ids, those whose cancellation was requested. */
  cancelRequested(ids: string[]): Promise<string[]>;
  /**
   * Queued operations whose replica has no heartbeat within replicaTtlMs become `replica`'s
   * (each is adopted by one replica only); returned oldest first, at most `limit`.
   */
  adoptQueued(replica: string, replicaTtlMs: number, limit: number): Promise<OperationRecord[]>;
  /** Deletes operations that ended before `before`; returns how many. */
  purgeOperations(before: Date): Promise<number>;
}
