import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { PaasError } from "../errors.ts";
import {
  checkQuery,
  checkRecord,
  decodeResult,
  encodeResult,
  pageOf,
  recordFromRow,
  unavailable,
  visibleNothing,
  whole,
} from "./audit-rows.ts";
import type {
  AuditPage,
  AuditQuery,
  AuditRecord,
  AuditStore,
  IdempotencyClaim,
  IdempotencyClaimRequest,
  StoredResult,
} from "../domain/audit.ts";
import type {
  OperationEnd,
  OperationPage,
  OperationQuery,
  OperationRecord,
  OperationState,
  ProgressRecord,
  StepRecord,
} from "../domain/operation.ts";
import { checkOperationQuery, operationFromRow, operationPage, progressJson, stepsJson } from "./operation-rows.ts";
import type {
  AttemptResult,
  DeliveryAttempt,
  DeliveryPage,
  DeliveryQuery,
  DeliveryRecord,
  NewDelivery,
  OutboxPlanner,
} from "../domain/webhook.ts";
import { checkDeliveryQuery, DELIVERY_COLUMNS, deliveryFromRow, deliveryPage } from "./delivery-rows.ts";

/**
 * The SQLite store (one replica): node:sqlite's DatabaseSync on a file, WAL journal,
 * synchronous=FULL (every commit is on disk before the call resolves). Times are stored as
 * integer milliseconds since the epoch, by this process's clock. Several store objects (or
 * processes) may share the file: writes take the lock at BEGIN (IMMEDIATE) and wait up to
 * busyTimeoutMs for each other.
 */

export interface SqliteAuditStoreOptions {
  /** The database file; its directory is created when missing. ":memory:": a private in-memory database (tests). */
  path: string;
  /** How long a statement waits for another connection's write lock, ms (default 5000). */
  busyTimeoutMs?: number;
}

/** MIGRATIONS are applied in order, each once; a later version only ever adds one at the end. */
const MIGRATIONS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 1,
    sql: `
      CREATE TABLE audit_events (
        id TEXT PRIMARY KEY,
        time_ms INTEGER NOT NULL,
        stage TEXT NOT NULL CHECK (stage IN ('intent', 'outcome')),
        outcome TEXT CHECK (outcome IN ('succeeded', 'failed', 'recovered', 'denied')),
        operation_id TEXT NOT NULL,
        caller TEXT NOT NULL,
        source_ip TEXT NOT NULL,
        user_agent TEXT NOT NULL,
        method TEXT NOT NULL,
        namespace TEXT NOT NULL,
        release_name TEXT NOT NULL,
        chart_reference TEXT NOT NULL,
        chart_version TEXT NOT NULL,
        values_sha256 TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        revision_before INTEGER NOT NULL,
        revision_after INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        error_code TEXT NOT NULL,
        error_message TEXT NOT NULL,
        replica TEXT NOT NULL,
        request_id TEXT NOT NULL
      ) STRICT;
      CREATE INDEX audit_events_time ON audit_events (time_ms, id);
      CREATE INDEX audit_events_namespace ON audit_events (namespace, time_ms, id);
      CREATE INDEX audit_events_operation ON audit_events (operation_id);
      CREATE UNIQUE INDEX audit_events_one_intent ON audit_events (operation_id) WHERE stage = 'intent';
      CREATE UNIQUE INDEX audit_events_one_outcome ON audit_events (operation_id) WHERE stage = 'outcome';
      -- Intents whose outcome is not written yet (kept in step by append), so that
      -- openIntents does not scan the whole log.
      CREATE TABLE open_intents (
        operation_id TEXT PRIMARY KEY,
        event_id TEXT NOT NULL
      ) STRICT;
      CREATE TABLE idempotency_keys (
        caller TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        operation_id TEXT NOT NULL,
        method TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('running', 'done')),
        result TEXT,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (caller, idempotency_key)
      ) STRICT;
      CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);
      CREATE TABLE replicas (
        id TEXT PRIMARY KEY,
        heartbeat_at INTEGER NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 2,
    sql: `
      CREATE TABLE operations (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        method TEXT NOT NULL,
        namespace TEXT NOT NULL,
        release_name TEXT NOT NULL,
        caller TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        finished_at INTEGER,
        updated_at INTEGER NOT NULL,
        steps TEXT NOT NULL,
        progress TEXT,
        request TEXT NOT NULL,
        params TEXT NOT NULL,
        response TEXT NOT NULL,
        response_type TEXT NOT NULL,
        error_code TEXT NOT NULL,
        error_message TEXT NOT NULL,
        error_reason TEXT NOT NULL,
        replica TEXT NOT NULL,
        cancel_requested INTEGER NOT NULL DEFAULT 0
      ) STRICT;
      CREATE INDEX operations_created ON operations (created_at, id);
      CREATE INDEX operations_namespace ON operations (namespace, created_at, id);
      CREATE INDEX operations_state ON operations (state, created_at);
      CREATE INDEX operations_finished ON operations (finished_at) WHERE finished_at IS NOT NULL;
    `,
  },
  {
    version: 3,
    sql: `
      CREATE TABLE webhook_deliveries (
        id TEXT PRIMARY KEY,
        subscription_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        operation_id TEXT NOT NULL,
        namespace TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead', 'disabled')),
        attempts INTEGER NOT NULL,
        schedule_from INTEGER NOT NULL,
        next_attempt_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        last_status INTEGER NOT NULL,
        last_error TEXT NOT NULL,
        claimed_by TEXT,
        claimed_until INTEGER
      ) STRICT;
      CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
      CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at, id);
      CREATE INDEX webhook_deliveries_operation ON webhook_deliveries (operation_id);
      CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription_id, created_at, id);
      CREATE TABLE webhook_attempts (
        delivery_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        at INTEGER NOT NULL,
        status_code INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        error_class TEXT NOT NULL,
        replica TEXT NOT NULL,
        PRIMARY KEY (delivery_id, attempt)
      ) STRICT;
      CREATE TABLE webhook_disabled_endpoints (
        subscription_id TEXT NOT NULL,
        url TEXT NOT NULL,
        disabled_at INTEGER NOT NULL,
        PRIMARY KEY (subscription_id, url)
      ) STRICT;
    `,
  },
];

/** SQLITE_READONLY, SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_CANTOPEN, SQLITE_NOTADB: worth a new handle. */
const REOPEN_ON = new Set([8, 10, 11, 14, 26]);

/** Replicas silent for this long are forgotten (heartbeat deletes them). */
const FORGET_REPLICA_MS = 7 * 24 * 3600 * 1000;

const OP_COLUMNS =
  "id, kind, method, namespace, release_name, caller, idempotency_key, state, created_at, started_at, finished_at, updated_at, " +
  "steps, progress, request, params, response, response_type, error_code, error_message, error_reason, replica, cancel_requested";

const COLUMNS =
  "id, time_ms, stage, outcome, operation_id, caller, source_ip, user_agent, method, namespace, release_name, " +
  "chart_reference, chart_version, values_sha256, idempotency_key, revision_before, revision_after, duration_ms, " +
  "error_code, error_message, replica, request_id";

type Row = Record<string, SQLInputValue>;

export class SqliteAuditStore implements AuditStore {
  readonly kind = "sqlite";
  readonly path: string;
  private readonly busyTimeoutMs: number;
  private db: DatabaseSync | undefined;
  private statements = new Map<string, StatementSync>();
  private closed = false;
  private readonly inMemory: boolean;
  private planner: OutboxPlanner | undefined;

  constructor(opts: SqliteAuditStoreOptions) {
    this.path = opts.path;
    this.inMemory = opts.path === ":memory:" || opts.path.startsWith("file::memory:");
    this.busyTimeoutMs = opts.busyTimeoutMs ?? 5000;
  }

  async migrate(): Promise<void> {
    return this.run((db) =>
      this.transaction(db, () => {
        db.exec(
          "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT",
        );
        const current = Number(this.stmt("SELECT coalesce(max(version), 0) AS v FROM schema_migrations").get()!.v);
        // A newer schema (written by a newer replica) is used as it is: migrations only add.
        for (const m of MIGRATIONS) {
          if (m.version <= current) continue;
          db.exec(m.sql);
          this.stmt("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)").run(m.version, Date.now());
        }
      }),
    );
  }

  async append(record: AuditRecord): Promise<"written" | "duplicate"> {
    checkRecord(record);
    return this.run((db) => this.transaction(db, () => this.appendIn(record)));
  }

  /** appendIn writes one record inside the caller's transaction. */
  private appendIn(record: AuditRecord): "written" | "duplicate" {
    const inserted = this.stmt(
      `INSERT INTO audit_events (${COLUMNS}) VALUES (${COLUMNS.split(",")
        .map(() => "?")
        .join(", ")}) ON CONFLICT DO NOTHING`,
    ).run(
      record.id,
      record.time.getTime(),
      record.stage,
      record.outcome ?? null,
      record.operationId,
      record.caller,
      record.sourceIp,
      record.userAgent,
      record.method,
      record.namespace,
      record.release,
      record.chartReference,
      record.chartVersion,
      record.valuesSha256,
      record.idempotencyKey,
      whole(record.revisionBefore),
      whole(record.revisionAfter),
      whole(record.durationMs),
      record.errorCode,
      record.errorMessage,
      record.replica,
      record.requestId,
    );
    if (inserted.changes === 0) return "duplicate";
    if (record.stage === "outcome") {
      this.stmt("DELETE FROM open_intents WHERE operation_id = ?").run(record.operationId);
    } else if (
      !this.stmt("SELECT 1 AS x FROM audit_events WHERE operation_id = ? AND stage = 'outcome'").get(record.operationId)
    ) {
      this.stmt("INSERT INTO open_intents (operation_id, event_id) VALUES (?, ?) ON CONFLICT DO NOTHING").run(
        record.operationId,
        record.id,
      );
    }
    return "written";
  }

  async list(query: AuditQuery): Promise<AuditPage> {
    const q = checkQuery(query);
    if (visibleNothing(q)) return { records: [], nextPageToken: "" };
    const where: string[] = [];
    const params: SQLInputValue[] = [];
    const eq = (column: string, value: string | undefined) => {
      if (value) {
        where.push(`${column} = ?`);
        params.push(value);
      }
    };
    eq("namespace", q.namespace);
    eq("release_name", q.release);
    eq("caller", q.caller);
    eq("operation_id", q.operationId);
    if (q.since) {
      where.push("time_ms >= ?");
      params.push(q.since.getTime());
    }
    if (q.until) {
      where.push("time_ms < ?");
      params.push(q.until.getTime());
    }
    if (q.visibility) {
      // instr() = 1 is a case-sensitive prefix test with no wildcard to escape (SQLite's LIKE
      // ignores ASCII case).
      where.push(
        "namespace <> '' AND (namespace IN (SELECT value FROM json_each(?)) OR EXISTS (SELECT 1 FROM json_each(?) p WHERE instr(namespace, p.value) = 1))",
      );
      params.push(JSON.stringify(q.visibility.exact), JSON.stringify(q.visibility.prefixes));
    }
    if (q.after) {
      where.push("(time_ms, id) < (?, ?)");
      params.push(q.after.timeMs, q.after.id);
    }
    const sql =
      `SELECT ${COLUMNS} FROM audit_events` +
      (where.length > 0 ? ` WHERE ${where.join(" AND ")}` : "") +
      " ORDER BY time_ms DESC, id DESC LIMIT ?";
    params.push(q.pageSize + 1);
    return this.run(() => {
      return pageOf((this.stmt(sql).all(...params) as Row[]).map(toRecord), q.pageSize);
    });
  }

  async openIntents(): Promise<AuditRecord[]> {
    return this.run(() =>
      (
        this.stmt(
          `SELECT ${COLUMNS.split(", ")
            .map((c) => `e.${c}`)
            .join(", ")} FROM open_intents o JOIN audit_events e ON e.id = o.event_id ORDER BY e.time_ms, e.id`,
        ).all() as Row[]
      ).map(toRecord),
    );
  }

  async heartbeat(replica: string): Promise<void> {
    return this.run(() => {
      const now = Date.now();
      this.stmt(
        "INSERT INTO replicas (id, heartbeat_at) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
      ).run(replica, now);
      this.stmt("DELETE FROM replicas WHERE heartbeat_at < ?").run(now - FORGET_REPLICA_MS);
    });
  }

  async liveReplicas(ttlMs: number): Promise<Set<string>> {
    return this.run(() => {
      const rows = this.stmt("SELECT id FROM replicas WHERE heartbeat_at > ?").all(Date.now() - ttlMs) as Row[];
      return new Set(rows.map((r) => String(r.id)));
    });
  }

  async claimIdempotency(req: IdempotencyClaimRequest): Promise<IdempotencyClaim> {
    checkTtl(req.ttlMs);
    return this.run((db) =>
      this.transaction(db, (): IdempotencyClaim => {
        const now = Date.now();
        const row = this.stmt(
          "SELECT fingerprint, operation_id, state, result, expires_at FROM idempotency_keys WHERE caller = ? AND idempotency_key = ?",
        ).get(req.caller, req.key) as Row | undefined;
        if (row && Number(row.expires_at) > now) {
          const operationId = String(row.operation_id);
          if (row.fingerprint !== req.fingerprint) return { state: "mismatch", operationId };
          if (row.state === "running") return { state: "running", operationId };
          return { state: "done", operationId, result: decodeResult(row.result as string | null) };
        }
        this.stmt(
          "INSERT INTO idempotency_keys (caller, idempotency_key, fingerprint, operation_id, method, state, result, created_at, expires_at) " +
            "VALUES (?, ?, ?, ?, ?, 'running', NULL, ?, ?) ON CONFLICT (caller, idempotency_key) DO UPDATE SET " +
            "fingerprint = excluded.fingerprint, operation_id = excluded.operation_id, method = excluded.method, state = 'running', " +
            "result = NULL, created_at = excluded.created_at, expires_at = excluded.expires_at",
        ).run(req.caller, req.key, req.fingerprint, req.operationId, req.method, now, now + req.ttlMs);
        return { state: "claimed" };
      }),
    );
  }

  async completeIdempotency(caller: string, key: string, operationId: string, result: StoredResult): Promise<void> {
    return this.run(() => {
      this.stmt(
        "UPDATE idempotency_keys SET state = 'done', result = ? WHERE caller = ? AND idempotency_key = ? AND operation_id = ? AND state = 'running'",
      ).run(encodeResult(result), caller, key, operationId);
    });
  }

  async abandonIdempotency(caller: string, key: string, operationId: string): Promise<void> {
    return this.run(() => {
      this.stmt(
        "DELETE FROM idempotency_keys WHERE caller = ? AND idempotency_key = ? AND operation_id = ? AND state = 'running'",
      ).run(caller, key, operationId);
    });
  }

  async purgeExpired(): Promise<number> {
    return this.run(() =>
      Number(this.stmt("DELETE FROM idempotency_keys WHERE expires_at <= ?").run(Date.now()).changes),
    );
  }

  // ---------------------------------------------------------------- operations

  async createOperation(op: OperationRecord, intent: AuditRecord): Promise<void> {
    checkRecord(intent);
    return this.run((db) =>
      this.transaction(db, () => {
        this.stmt(
          `INSERT INTO operations (${OP_COLUMNS}) VALUES (${OP_COLUMNS.split(",")
            .map(() => "?")
            .join(", ")})`,
        ).run(
          op.id,
          op.kind,
          op.method,
          op.namespace,
          op.release,
          op.caller,
          op.idempotencyKey,
          op.state,
          op.createdAt.getTime(),
          op.startedAt?.getTime() ?? null,
          op.finishedAt?.getTime() ?? null,
          op.updatedAt.getTime(),
          stepsJson(op.steps),
          progressJson(op.progress),
          op.request,
          JSON.stringify(op.params),
          op.response,
          op.responseType,
          op.error?.code ?? "",
          op.error?.message ?? "",
          op.error?.reason ?? "",
          op.replica,
          op.cancelRequested ? 1 : 0,
        );
        this.appendIn(intent);
      }),
    );
  }

  async getOperation(id: string): Promise<OperationRecord | undefined> {
    return this.run(() => {
      const row = this.stmt(`SELECT ${OP_COLUMNS} FROM operations WHERE id = ?`).get(id) as Row | undefined;
      return row ? toOperation(row) : undefined;
    });
  }

  async listOperations(query: OperationQuery): Promise<OperationPage> {
    const q = checkOperationQuery(query);
    if (q.visibility && q.visibility.exact.length === 0 && q.visibility.prefixes.length === 0)
      return { operations: [], nextPageToken: "" };
    const where: string[] = [];
    const params: SQLInputValue[] = [];
    for (const [column, value] of [
      ["namespace", q.namespace],
      ["release_name", q.release],
      ["state", q.state],
      ["kind", q.kind],
    ] as const) {
      if (value) {
        where.push(`${column} = ?`);
        params.push(value);
      }
    }
    if (q.since) {
      where.push("created_at >= ?");
      params.push(q.since.getTime());
    }
    if (q.visibility) {
      where.push(
        "(namespace IN (SELECT value FROM json_each(?)) OR EXISTS (SELECT 1 FROM json_each(?) p WHERE instr(namespace, p.value) = 1))",
      );
      params.push(JSON.stringify(q.visibility.exact), JSON.stringify(q.visibility.prefixes));
    }
    if (q.after) {
      where.push("(created_at, id) < (?, ?)");
      params.push(q.after.timeMs, q.after.id);
    }
    const sql = `SELECT ${OP_COLUMNS} FROM operations${where.length > 0 ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY created_at DESC, id DESC LIMIT ?`;
    params.push(q.pageSize + 1);
    return this.run(() => operationPage((this.stmt(sql).all(...params) as Row[]).map(toOperation), q.pageSize));
  }

  async startOperation(id: string, replica: string, at: Date): Promise<boolean> {
    return this.run(
      () =>
        Number(
          this.stmt(
            "UPDATE operations SET state = 'running', started_at = ?, updated_at = ? WHERE id = ? AND state = 'queued' AND replica = ?",
          ).run(at.getTime(), Date.now(), id, replica).changes,
        ) === 1,
    );
  }

  async saveProgress(id: string, steps: StepRecord[], progress: ProgressRecord | undefined): Promise<void> {
    return this.run(() => {
      this.stmt(
        "UPDATE operations SET steps = ?, progress = ?, updated_at = ? WHERE id = ? AND state IN ('queued', 'running')",
      ).run(stepsJson(steps), progressJson(progress), Date.now(), id);
    });
  }

  async finishOperation(
    id: string,
    end: OperationEnd,
    outcome: AuditRecord | undefined,
    from: OperationState[] = ["queued", "running"],
  ): Promise<boolean> {
    if (outcome) checkRecord(outcome);
    return this.run((db) =>
      this.transaction(db, () => {
        const changed = this.stmt(
          "UPDATE operations SET state = ?, finished_at = ?, updated_at = ?, steps = ?, progress = ?, response = ?, error_code = ?, error_message = ?, error_reason = ?, request = '' " +
            "WHERE id = ? AND state IN (SELECT value FROM json_each(?))",
        ).run(
          end.state,
          end.finishedAt.getTime(),
          Date.now(),
          stepsJson(end.steps),
          progressJson(end.progress),
          end.response ?? "",
          end.error?.code ?? "",
          end.error?.message ?? "",
          end.error?.reason ?? "",
          id,
          JSON.stringify(from),
        ).changes;
        if (Number(changed) !== 1) return false;
        if (outcome) this.appendIn(outcome);
        if (this.planner) {
          const row = this.stmt(`SELECT ${OP_COLUMNS} FROM operations WHERE id = ?`).get(id) as Row;
          this.enqueueIn(this.planner(toOperation(row)));
        }
        return true;
      }),
    );
  }

  async requestCancel(id: string): Promise<void> {
    return this.run(() => {
      this.stmt(
        "UPDATE operations SET cancel_requested = 1, updated_at = ? WHERE id = ? AND state IN ('queued', 'running')",
      ).run(Date.now(), id);
    });
  }

  async cancelRequested(ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    return this.run(() =>
      (
        this.stmt(
          "SELECT id FROM operations WHERE cancel_requested = 1 AND id IN (SELECT value FROM json_each(?))",
        ).all(JSON.stringify(ids)) as Row[]
      ).map((r) => String(r.id)),
    );
  }

  async adoptQueued(replica: string, replicaTtlMs: number, limit: number): Promise<OperationRecord[]> {
    return this.run((db) =>
      this.transaction(db, () => {
        const live = "SELECT id FROM replicas WHERE heartbeat_at > ?";
        const rows = this.stmt(
          `SELECT ${OP_COLUMNS} FROM operations WHERE state = 'queued' AND replica <> ? AND replica NOT IN (${live}) ORDER BY created_at, id LIMIT ?`,
        ).all(replica, Date.now() - replicaTtlMs, limit) as Row[];
        const now = Date.now();
        for (const r of rows)
          this.stmt("UPDATE operations SET replica = ?, updated_at = ? WHERE id = ? AND state = 'queued'").run(
            replica,
            now,
            String(r.id),
          );
        return rows.map((r) => toOperation({ ...r, replica, updated_at: now }));
      }),
    );
  }

  async purgeOperations(before: Date): Promise<number> {
    return this.run((db) =>
      this.transaction(db, () => {
        // Settled webhook deliveries (and their attempts) go with the operations of that age.
        this.stmt(
          "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE state <> 'pending' AND updated_at < ?)",
        ).run(before.getTime());
        this.stmt("DELETE FROM webhook_deliveries WHERE state <> 'pending' AND updated_at < ?").run(before.getTime());
        return Number(
          this.stmt("DELETE FROM operations WHERE finished_at IS NOT NULL AND finished_at < ?").run(before.getTime())
            .changes,
        );
      }),
    );
  }

  // ---------------------------------------------------------------- webhook outbox

  setOutboxPlanner(planner: OutboxPlanner | undefined): void {
    this.planner = planner;
  }

  async enqueueDeliveries(rows: NewDelivery[]): Promise<void> {
    if (rows.length === 0) return;
    return this.run((db) => this.transaction(db, () => this.enqueueIn(rows)));
  }

  private enqueueIn(rows: NewDelivery[]): void {
    const now = Date.now();
    for (const d of rows) {
      this.stmt(
        `INSERT INTO webhook_deliveries (${DELIVERY_COLUMNS.join(", ")}) VALUES (${DELIVERY_COLUMNS.map(() => "?").join(", ")}) ON CONFLICT DO NOTHING`,
      ).run(
        d.id,
        d.subscriptionId,
        d.eventType,
        d.operationId,
        d.namespace,
        d.payload,
        "pending",
        0,
        0,
        d.createdAt.getTime(),
        d.createdAt.getTime(),
        now,
        0,
        "",
        null,
        null,
      );
    }
  }

  async claimDeliveries(replica: string, claimMs: number, limit: number): Promise<DeliveryRecord[]> {
    return this.run((db) =>
      this.transaction(db, () => {
        const now = Date.now();
        const rows = this.stmt(
          `SELECT ${DELIVERY_COLUMNS.join(", ")} FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= ? ` +
            "AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY next_attempt_at, id LIMIT ?",
        ).all(now, now, limit) as Row[];
        for (const r of rows)
          this.stmt("UPDATE webhook_deliveries SET claimed_by = ?, claimed_until = ? WHERE id = ?").run(
            replica,
            now + claimMs,
            String(r.id),
          );
        return rows.map(toDelivery);
      }),
    );
  }

  async recordAttempt(attempt: DeliveryAttempt, result: AttemptResult): Promise<boolean> {
    return this.run((db) =>
      this.transaction(db, () => {
        const now = Date.now();
        const changed = this.stmt(
          "UPDATE webhook_deliveries SET attempts = attempts + 1, state = ?, next_attempt_at = ?, updated_at = ?, last_status = ?, last_error = ?, " +
            "claimed_by = NULL, claimed_until = NULL WHERE id = ? AND claimed_by = ? AND claimed_until >= ? AND attempts + 1 = ?",
        ).run(
          result.state,
          (result.nextAttemptAt ?? attempt.at).getTime(),
          now,
          whole(attempt.statusCode),
          attempt.errorClass,
          attempt.deliveryId,
          attempt.replica,
          now,
          attempt.attempt,
        ).changes;
        if (Number(changed) !== 1) return false;
        this.stmt(
          "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, duration_ms, error_class, replica) VALUES (?, ?, ?, ?, ?, ?, ?)",
        ).run(
          attempt.deliveryId,
          attempt.attempt,
          attempt.at.getTime(),
          whole(attempt.statusCode),
          whole(attempt.durationMs),
          attempt.errorClass,
          attempt.replica,
        );
        return true;
      }),
    );
  }

  async releaseClaim(id: string, replica: string, at: Date): Promise<void> {
    return this.run(() => {
      this.stmt(
        "UPDATE webhook_deliveries SET claimed_by = NULL, claimed_until = NULL, next_attempt_at = ? WHERE id = ? AND claimed_by = ? AND state = 'pending'",
      ).run(at.getTime(), id, replica);
    });
  }

  async getDelivery(id: string): Promise<DeliveryRecord | undefined> {
    return this.run(() => {
      const row = this.stmt(`SELECT ${DELIVERY_COLUMNS.join(", ")} FROM webhook_deliveries WHERE id = ?`).get(id) as
        Row | undefined;
      return row ? toDelivery(row) : undefined;
    });
  }

  async listDeliveries(query: DeliveryQuery): Promise<DeliveryPage> {
    const q = checkDeliveryQuery(query);
    const where: string[] = [];
    const params: SQLInputValue[] = [];
    for (const [column, value] of [
      ["subscription_id", q.subscriptionId],
      ["operation_id", q.operationId],
      ["state", q.state],
    ] as const) {
      if (value) {
        where.push(`${column} = ?`);
        params.push(value);
      }
    }
    if (q.after) {
      where.push("(created_at, id) < (?, ?)");
      params.push(q.after.timeMs, q.after.id);
    }
    const sql = `SELECT ${DELIVERY_COLUMNS.join(", ")} FROM webhook_deliveries${where.length > 0 ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY created_at DESC, id DESC LIMIT ?`;
    params.push(q.pageSize + 1);
    return this.run(() => deliveryPage((this.stmt(sql).all(...params) as Row[]).map(toDelivery), q.pageSize));
  }

  async listAttempts(deliveryId: string): Promise<DeliveryAttempt[]> {
    return this.run(() =>
      (
        this.stmt(
          "SELECT delivery_id, attempt, at, status_code, duration_ms, error_class, replica FROM webhook_attempts WHERE delivery_id = ? ORDER BY attempt",
        ).all(deliveryId) as Row[]
      ).map((r) => ({
        deliveryId: String(r.delivery_id),
        attempt: Number(r.attempt),
        at: new Date(Number(r.at)),
        statusCode: Number(r.status_code),
        durationMs: Number(r.duration_ms),
        errorClass: String(r.error_class),
        replica: String(r.replica),
      })),
    );
  }

  async redeliver(id: string): Promise<DeliveryRecord | undefined | false> {
    return this.run((db) =>
      this.transaction(db, () => {
        const now = Date.now();
        const row = this.stmt("SELECT state FROM webhook_deliveries WHERE id = ?").get(id) as Row | undefined;
        if (!row) return undefined;
        if (row.state !== "delivered" && row.state !== "dead") return false;
        this.stmt(
          "UPDATE webhook_deliveries SET state = 'pending', schedule_from = attempts, next_attempt_at = ?, updated_at = ?, claimed_by = NULL, claimed_until = NULL WHERE id = ?",
        ).run(now, now, id);
        return toDelivery(
          this.stmt(`SELECT ${DELIVERY_COLUMNS.join(", ")} FROM webhook_deliveries WHERE id = ?`).get(id) as Row,
        );
      }),
    );
  }

  async disableEndpoint(subscriptionId: string, url: string, at: Date): Promise<void> {
    return this.run((db) =>
      this.transaction(db, () => {
        this.stmt(
          "INSERT INTO webhook_disabled_endpoints (subscription_id, url, disabled_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        ).run(subscriptionId, url, at.getTime());
        this.stmt(
          "UPDATE webhook_deliveries SET state = 'disabled', updated_at = ?, claimed_by = NULL, claimed_until = NULL WHERE subscription_id = ? AND state = 'pending'",
        ).run(Date.now(), subscriptionId);
      }),
    );
  }

  async disabledEndpoints(): Promise<Set<string>> {
    return this.run(
      () =>
        new Set(
          (this.stmt("SELECT subscription_id, url FROM webhook_disabled_endpoints").all() as Row[]).map(
            (r) => `${String(r.subscription_id)} ${String(r.url)}`,
          ),
        ),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    this.drop();
  }

  // ---------------------------------------------------------------- plumbing

  /** connection opens the database on first use (and again after a failure dropped it). */
  private connection(): DatabaseSync {
    if (this.closed) throw unavailable("the store is closed");
    if (this.db) return this.db;
    if (!this.inMemory) mkdirSync(dirname(this.path), { recursive: true });
    const db = new DatabaseSync(this.path, { timeout: this.busyTimeoutMs });
    try {
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA synchronous = FULL");
      db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(this.busyTimeoutMs))}`);
    } catch (err) {
      db.close();
      throw err;
    }
    this.db = db;
    return db;
  }

  private stmt(sql: string): StatementSync {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.connection().prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  private transaction<T>(db: DatabaseSync, fn: () => T): T {
    db.exec("BEGIN IMMEDIATE");
    try {
      const result = fn();
      db.exec("COMMIT");
      return result;
    } catch (err) {
      if (db.isTransaction) db.exec("ROLLBACK");
      throw err;
    }
  }

  /** run maps every database failure to PaasError("unavailable"); a lasting one reopens the file next time. */
  private async run<T>(fn: (db: DatabaseSync) => T): Promise<T> {
    try {
      return fn(this.connection());
    } catch (err) {
      if (err instanceof PaasError) throw err;
      const e = err as { errcode?: number; code?: string; message?: string };
      // A broken handle (I/O error, file replaced or gone) is reopened on the next call; an
      // in-memory database cannot be, it would come back empty.
      if (e.errcode !== undefined && REOPEN_ON.has(e.errcode & 0xff) && !this.inMemory) this.drop();
      const reason =
        e.errcode !== undefined
          ? (e.message ?? "database error")
          : e.code
            ? `cannot open the database file (${e.code})`
            : "database error";
      throw unavailable(reason.slice(0, 200), err);
    }
  }

  private drop(): void {
    this.statements.clear();
    const db = this.db;
    this.db = undefined;
    try {
      db?.close();
    } catch {
      // already closed or broken: nothing to release
    }
  }
}

function checkTtl(ttlMs: number): void {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0)
    throw new PaasError("invalid_argument", "idempotency ttl must be positive");
}

function toOperation(r: Row): OperationRecord {
  const at = (v: unknown) => (v === null || v === undefined ? undefined : new Date(Number(v)));
  return operationFromRow(r, {
    createdAt: at(r.created_at)!,
    startedAt: at(r.started_at),
    finishedAt: at(r.finished_at),
    updatedAt: at(r.updated_at)!,
  });
}

function toDelivery(r: Row): DeliveryRecord {
  return deliveryFromRow(r, {
    createdAt: new Date(Number(r.created_at)),
    nextAttemptAt: new Date(Number(r.next_attempt_at)),
    updatedAt: new Date(Number(r.updated_at)),
  });
}

function toRecord(r: Row): AuditRecord {
  return recordFromRow(r, new Date(Number(r.time_ms)));
}
