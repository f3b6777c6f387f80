import pg from "pg";
import type { Logger } from "pino";
import { PaasError } from "../errors.ts";
import {
  checkQuery,
  checkRecord,
  decodeResult,
  encodeResult,
  likePrefix,
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
 * The PostgreSQL store (several replicas). Times that compare replicas with each other
 * (heartbeats, idempotency expiry) come from the database clock (now()); audit record times
 * are the writers'. The pool fails fast while the server is away (connect timeout, statement
 * and client-side query timeouts) and reconnects by itself once it is back: a failed client
 * is dropped, the next call opens a new connection.
 */

export interface PostgresAuditStoreOptions {
  /** postgres://user:password@host:port/database?… — never logged nor put into errors. */
  connectionString: string;
  /** Schema for the tables (created by migrate); default: the connection's search_path (public). */
  schema?: string;
  /** Where idle-connection failures are reported (the pool's 'error' event). */
  logger?: Pick<Logger, "warn">;
  /** Connections at most (default 10). */
  maxConnections?: number;
  /** A new connection gives up after this long, ms (default 2000). */
  connectTimeoutMs?: number;
  /** One statement gives up after this long, ms (default 5000; server statement_timeout and client-side). */
  queryTimeoutMs?: number;
}

/** Migrations may wait for another replica's migration and take longer than a call. */
const MIGRATE_TIMEOUT_MS = 60_000;
const FORGET_REPLICAS = "7 days";

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** MIGRATIONS are applied in order, each once; {s} is the schema prefix. A later version only adds one at the end. */
const MIGRATIONS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 1,
    sql: `
      CREATE TABLE {s}audit_events (
        id text PRIMARY KEY,
        event_time timestamptz NOT NULL,
        stage text NOT NULL CHECK (stage IN ('intent', 'outcome')),
        outcome text CHECK (outcome IN ('succeeded', 'failed', 'recovered', 'denied')),
        operation_id text NOT NULL,
        caller text NOT NULL,
        source_ip text NOT NULL,
        user_agent text NOT NULL,
        method text NOT NULL,
        namespace text NOT NULL,
        release_name text NOT NULL,
        chart_reference text NOT NULL,
        chart_version text NOT NULL,
        values_sha256 text NOT NULL,
        idempotency_key text NOT NULL,
        revision_before bigint NOT NULL,
        revision_after bigint NOT NULL,
        duration_ms bigint NOT NULL,
        error_code text NOT NULL,
        error_message text NOT NULL,
        replica text NOT NULL,
        request_id text NOT NULL
      );
      CREATE INDEX audit_events_time ON {s}audit_events (event_time, id);
      CREATE INDEX audit_events_namespace ON {s}audit_events (namespace, event_time, id);
      CREATE INDEX audit_events_operation ON {s}audit_events (operation_id);
      CREATE UNIQUE INDEX audit_events_one_intent ON {s}audit_events (operation_id) WHERE stage = 'intent';
      CREATE UNIQUE INDEX audit_events_one_outcome ON {s}audit_events (operation_id) WHERE stage = 'outcome';
      CREATE TABLE {s}open_intents (
        operation_id text PRIMARY KEY,
        event_id text NOT NULL
      );
      CREATE TABLE {s}idempotency_keys (
        caller text NOT NULL,
        idempotency_key text NOT NULL,
        fingerprint text NOT NULL,
        operation_id text NOT NULL,
        method text NOT NULL,
        state text NOT NULL CHECK (state IN ('running', 'done')),
        result text,
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        PRIMARY KEY (caller, idempotency_key)
      );
      CREATE INDEX idempotency_keys_expires ON {s}idempotency_keys (expires_at);
      CREATE TABLE {s}replicas (
        id text PRIMARY KEY,
        heartbeat_at timestamptz NOT NULL
      );
    `,
  },
  {
    version: 2,
    sql: `
      CREATE TABLE {s}operations (
        id text PRIMARY KEY,
        kind text NOT NULL,
        method text NOT NULL,
        namespace text NOT NULL,
        release_name text NOT NULL,
        caller text NOT NULL,
        idempotency_key text NOT NULL,
        state text NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
        created_at timestamptz NOT NULL,
        started_at timestamptz,
        finished_at timestamptz,
        updated_at timestamptz NOT NULL,
        steps text NOT NULL,
        progress text,
        request text NOT NULL,
        params text NOT NULL,
        response text NOT NULL,
        response_type text NOT NULL,
        error_code text NOT NULL,
        error_message text NOT NULL,
        error_reason text NOT NULL,
        replica text NOT NULL,
        cancel_requested boolean NOT NULL DEFAULT false
      );
      CREATE INDEX operations_created ON {s}operations (created_at, id);
      CREATE INDEX operations_namespace ON {s}operations (namespace, created_at, id);
      CREATE INDEX operations_state ON {s}operations (state, created_at);
      CREATE INDEX operations_finished ON {s}operations (finished_at) WHERE finished_at IS NOT NULL;
    `,
  },
  {
    version: 3,
    sql: `
      CREATE TABLE {s}webhook_deliveries (
        id text PRIMARY KEY,
        subscription_id text NOT NULL,
        event_type text NOT NULL,
        operation_id text NOT NULL,
        namespace text NOT NULL,
        payload text NOT NULL,
        state text NOT NULL CHECK (state IN ('pending', 'delivered', 'dead', 'disabled')),
        attempts integer NOT NULL,
        schedule_from integer NOT NULL,
        next_attempt_at timestamptz NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        last_status integer NOT NULL,
        last_error text NOT NULL,
        claimed_by text,
        claimed_until timestamptz
      );
      CREATE INDEX webhook_deliveries_due ON {s}webhook_deliveries (next_attempt_at) WHERE state = 'pending';
      CREATE INDEX webhook_deliveries_created ON {s}webhook_deliveries (created_at, id);
      CREATE INDEX webhook_deliveries_operation ON {s}webhook_deliveries (operation_id);
      CREATE INDEX webhook_deliveries_subscription ON {s}webhook_deliveries (subscription_id, created_at, id);
      CREATE TABLE {s}webhook_attempts (
        delivery_id text NOT NULL,
        attempt integer NOT NULL,
        at timestamptz NOT NULL,
        status_code integer NOT NULL,
        duration_ms integer NOT NULL,
        error_class text NOT NULL,
        replica text NOT NULL,
        PRIMARY KEY (delivery_id, attempt)
      );
      CREATE TABLE {s}webhook_disabled_endpoints (
        subscription_id text NOT NULL,
        url text NOT NULL,
        disabled_at timestamptz NOT NULL,
        PRIMARY KEY (subscription_id, url)
      );
    `,
  },
];

const OP_COLUMNS = [
  "id",
  "kind",
  "method",
  "namespace",
  "release_name",
  "caller",
  "idempotency_key",
  "state",
  "created_at",
  "started_at",
  "finished_at",
  "updated_at",
  "steps",
  "progress",
  "request",
  "params",
  "response",
  "response_type",
  "error_code",
  "error_message",
  "error_reason",
  "replica",
  "cancel_requested",
];

const COLUMNS = [
  "id",
  "event_time",
  "stage",
  "outcome",
  "operation_id",
  "caller",
  "source_ip",
  "user_agent",
  "method",
  "namespace",
  "release_name",
  "chart_reference",
  "chart_version",
  "values_sha256",
  "idempotency_key",
  "revision_before",
  "revision_after",
  "duration_ms",
  "error_code",
  "error_message",
  "replica",
  "request_id",
];

type Row = Record<string, unknown>;

export class PostgresAuditStore implements AuditStore {
  readonly kind = "postgres";
  private readonly pool: pg.Pool;
  private readonly schema: string | undefined;
  /** "" or the quoted schema and a dot, put before every table name. */
  private readonly s: string;
  private readonly logger: Pick<Logger, "warn"> | undefined;
  private closed = false;
  private planner: OutboxPlanner | undefined;

  constructor(opts: PostgresAuditStoreOptions) {
    if (!/^postgres(ql)?:\/\//i.test(opts.connectionString) || !URL.canParse(opts.connectionString)) {
      // No cause: URL's own error carries the input, password included.
      throw new PaasError(
        "invalid_argument",
        "the audit database URL is malformed (postgres://user:password@host:port/database)",
      );
    }
    if (opts.schema !== undefined && !SCHEMA_NAME.test(opts.schema)) {
      throw new PaasError("invalid_argument", "the audit database schema must be lowercase letters, digits and '_'");
    }
    this.schema = opts.schema;
    this.s = opts.schema ? `"${opts.schema}".` : "";
    this.logger = opts.logger;
    const queryTimeoutMs = opts.queryTimeoutMs ?? 5000;
    this.pool = new pg.Pool({
      connectionString: opts.connectionString,
      max: opts.maxConnections ?? 10,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 2000,
      statement_timeout: queryTimeoutMs,
      // Client side too: a server that stopped answering (network gone) is not waited for.
      query_timeout: queryTimeoutMs + 1000,
      idle_in_transaction_session_timeout: 30_000,
      idleTimeoutMillis: 10_000,
      keepAlive: true,
      allowExitOnIdle: true,
      application_name: "paas-operator",
    });
    // An idle connection that fails (server restarted, network cut) is dropped by the pool;
    // without a listener the 'error' event would crash the process.
    this.pool.on("error", (err) => {
      this.logger?.warn(
        { reason: reasonOf(err), code: codeOf(err) },
        "audit store: an idle database connection failed; it is replaced on next use",
      );
    });
  }

  async migrate(): Promise<void> {
    return this.run(() =>
      this.transaction(async (c) => {
        const q = (text: string, values: unknown[] = []) =>
          c.query({ text, values, query_timeout: MIGRATE_TIMEOUT_MS } as pg.QueryConfig);
        await q(`SET LOCAL statement_timeout = ${MIGRATE_TIMEOUT_MS}`);
        // Replicas that start at once migrate one after the other; the lock ends with the transaction.
        await q("SELECT pg_advisory_xact_lock(hashtext($1))", [`paas-operator/audit-schema/${this.schema ?? ""}`]);
        if (this.schema) await q(`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`);
        await q(
          `CREATE TABLE IF NOT EXISTS ${this.s}schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
        );
        const current = Number(
          (await q(`SELECT coalesce(max(version), 0) AS v FROM ${this.s}schema_migrations`)).rows[0].v,
        );
        // A newer schema (written by a newer replica) is used as it is: migrations only add.
        for (const m of MIGRATIONS) {
          if (m.version <= current) continue;
          await q(m.sql.replaceAll("{s}", this.s));
          await q(`INSERT INTO ${this.s}schema_migrations (version) VALUES ($1)`, [m.version]);
        }
      }),
    );
  }

  async append(record: AuditRecord): Promise<"written" | "duplicate"> {
    const { sql, values } = this.appendQuery(record);
    return this.run(async () => ((await this.pool.query(sql, values)).rows[0].n > 0 ? "written" : "duplicate"));
  }

  /** appendQuery is the one statement that appends a record and keeps open_intents in step. */
  private appendQuery(record: AuditRecord): { sql: string; values: unknown[] } {
    checkRecord(record);
    const values = [
      text(record.id),
      record.time,
      record.stage,
      record.outcome ?? null,
      text(record.operationId),
      text(record.caller),
      text(record.sourceIp),
      text(record.userAgent),
      text(record.method),
      text(record.namespace),
      text(record.release),
      text(record.chartReference),
      text(record.chartVersion),
      text(record.valuesSha256),
      text(record.idempotencyKey),
      whole(record.revisionBefore),
      whole(record.revisionAfter),
      whole(record.durationMs),
      text(record.errorCode),
      text(record.errorMessage),
      text(record.replica),
      text(record.requestId),
    ];
    // One statement, so one transaction: the event and the open-intent bookkeeping.
    const sql = `
      WITH ins AS (
        INSERT INTO ${this.s}audit_events (${COLUMNS.join(", ")})
        VALUES (${COLUMNS.map((_, i) => `$${i + 1}`).join(", ")})
        ON CONFLICT DO NOTHING
        RETURNING id, stage, operation_id
      ), closed AS (
        DELETE FROM ${this.s}open_intents WHERE operation_id IN (SELECT operation_id FROM ins WHERE stage = 'outcome')
      ), opened AS (
        INSERT INTO ${this.s}open_intents (operation_id, event_id)
        SELECT i.operation_id, i.id FROM ins i
        WHERE i.stage = 'intent'
          AND NOT EXISTS (SELECT 1 FROM ${this.s}audit_events o WHERE o.operation_id = i.operation_id AND o.stage = 'outcome')
        ON CONFLICT DO NOTHING
      )
      SELECT count(*)::int AS n FROM ins`;
    return { sql, values };
  }

  async list(query: AuditQuery): Promise<AuditPage> {
    const q = checkQuery(query);
    if (visibleNothing(q)) return { records: [], nextPageToken: "" };
    const where: string[] = [];
    const values: unknown[] = [];
    const param = (v: unknown) => {
      values.push(v);
      return `$${values.length}`;
    };
    for (const [column, value] of [
      ["namespace", q.namespace],
      ["release_name", q.release],
      ["caller", q.caller],
      ["operation_id", q.operationId],
    ] as const) {
      if (value) where.push(`${column} = ${param(text(value))}`);
    }
    if (q.since) where.push(`event_time >= ${param(q.since)}`);
    if (q.until) where.push(`event_time < ${param(q.until)}`);
    if (q.visibility) {
      // LIKE's default escape character is the backslash (likePrefix escapes %, _ and \).
      where.push(
        `namespace <> '' AND (namespace = ANY(${param(q.visibility.exact.map(text))}::text[]) OR namespace LIKE ANY(${param(q.visibility.prefixes.map((p) => likePrefix(text(p))))}::text[]))`,
      );
    }
    if (q.after) where.push(`(event_time, id) < (${param(new Date(q.after.timeMs))}, ${param(text(q.after.id))})`);
    const sql =
      `SELECT ${COLUMNS.join(", ")} FROM ${this.s}audit_events` +
      (where.length > 0 ? ` WHERE ${where.join(" AND ")}` : "") +
      ` ORDER BY event_time DESC, id DESC LIMIT ${param(q.pageSize + 1)}`;
    return this.run(async () => {
      return pageOf(((await this.pool.query(sql, values)).rows as Row[]).map(toRecord), q.pageSize);
    });
  }

  async openIntents(): Promise<AuditRecord[]> {
    const sql =
      `SELECT ${COLUMNS.map((c) => `e.${c}`).join(", ")} FROM ${this.s}open_intents o ` +
      `JOIN ${this.s}audit_events e ON e.id = o.event_id ORDER BY e.event_time, e.id`;
    return this.run(async () => ((await this.pool.query(sql)).rows as Row[]).map(toRecord));
  }

  async heartbeat(replica: string): Promise<void> {
    const sql = `
      WITH beat AS (
        INSERT INTO ${this.s}replicas (id, heartbeat_at) VALUES ($1, now())
        ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at
      )
      DELETE FROM ${this.s}replicas WHERE heartbeat_at < now() - interval '${FORGET_REPLICAS}' AND id <> $1`;
    await this.run(() => this.pool.query(sql, [text(replica)]));
  }

  async liveReplicas(ttlMs: number): Promise<Set<string>> {
    const sql = `SELECT id FROM ${this.s}replicas WHERE heartbeat_at > now() - make_interval(secs => $1::double precision / 1000)`;
    return this.run(
      async () => new Set(((await this.pool.query(sql, [ttlMs])).rows as Row[]).map((r) => String(r.id))),
    );
  }

  async claimIdempotency(req: IdempotencyClaimRequest): Promise<IdempotencyClaim> {
    if (!Number.isFinite(req.ttlMs) || req.ttlMs <= 0)
      throw new PaasError("invalid_argument", "idempotency ttl must be positive");
    // Atomic across replicas: the insert takes a free key or replaces an expired one (the row
    // lock of ON CONFLICT orders concurrent claims); a live key is then read as it is.
    const claim = `
      INSERT INTO ${this.s}idempotency_keys AS k
        (caller, idempotency_key, fingerprint, operation_id, method, state, result, created_at, expires_at)
      VALUES ($1, $2, $3, $4, $5, 'running', NULL, now(), now() + make_interval(secs => $6::double precision / 1000))
      ON CONFLICT (caller, idempotency_key) DO UPDATE SET
        fingerprint = excluded.fingerprint, operation_id = excluded.operation_id, method = excluded.method,
        state = 'running', result = NULL, created_at = excluded.created_at, expires_at = excluded.expires_at
      WHERE k.expires_at <= now()
      RETURNING k.operation_id`;
    const read = `SELECT fingerprint, operation_id, state, result FROM ${this.s}idempotency_keys WHERE caller = $1 AND idempotency_key = $2 AND expires_at > now()`;
    const args = [
      text(req.caller),
      text(req.key),
      text(req.fingerprint),
      text(req.operationId),
      text(req.method),
      req.ttlMs,
    ];
    return this.run(async (): Promise<IdempotencyClaim> => {
      // The live key read after a lost claim may be gone again (abandoned, expired): claim anew.
      for (let attempt = 0; ; attempt++) {
        if ((await this.pool.query(claim, args)).rowCount === 1) return { state: "claimed" };
        const row = (await this.pool.query(read, args.slice(0, 2))).rows[0] as Row | undefined;
        if (row) {
          const operationId = String(row.operation_id);
          if (row.fingerprint !== req.fingerprint) return { state: "mismatch", operationId };
          if (row.state === "running") return { state: "running", operationId };
          return { state: "done", operationId, result: decodeResult(row.result as string | null) };
        }
        if (attempt >= 4) throw unavailable("idempotency key keeps changing");
      }
    });
  }

  async completeIdempotency(caller: string, key: string, operationId: string, result: StoredResult): Promise<void> {
    const sql =
      `UPDATE ${this.s}idempotency_keys SET state = 'done', result = $4 ` +
      "WHERE caller = $1 AND idempotency_key = $2 AND operation_id = $3 AND state = 'running'";
    await this.run(() =>
      this.pool.query(sql, [text(caller), text(key), text(operationId), text(encodeResult(result))]),
    );
  }

  async abandonIdempotency(caller: string, key: string, operationId: string): Promise<void> {
    const sql = `DELETE FROM ${this.s}idempotency_keys WHERE caller = $1 AND idempotency_key = $2 AND operation_id = $3 AND state = 'running'`;
    await this.run(() => this.pool.query(sql, [text(caller), text(key), text(operationId)]));
  }

  async purgeExpired(): Promise<number> {
    return this.run(
      async () =>
        (await this.pool.query(`DELETE FROM ${this.s}idempotency_keys WHERE expires_at <= now()`)).rowCount ?? 0,
    );
  }

  // ---------------------------------------------------------------- operations

  async createOperation(op: OperationRecord, intent: AuditRecord): Promise<void> {
    const insert = `INSERT INTO ${this.s}operations (${OP_COLUMNS.join(", ")}) VALUES (${OP_COLUMNS.map((_, i) => `$${i + 1}`).join(", ")})`;
    const values = [
      text(op.id),
      text(op.kind),
      text(op.method),
      text(op.namespace),
      text(op.release),
      text(op.caller),
      text(op.idempotencyKey),
      op.state,
      op.createdAt,
      op.startedAt ?? null,
      op.finishedAt ?? null,
      op.updatedAt,
      text(stepsJson(op.steps)),
      progressJson(op.progress),
      text(op.request),
      text(JSON.stringify(op.params)),
      text(op.response),
      text(op.responseType),
      text(op.error?.code ?? ""),
      text(op.error?.message ?? ""),
      text(op.error?.reason ?? ""),
      text(op.replica),
      op.cancelRequested,
    ];
    const intentQuery = this.appendQuery(intent);
    await this.run(() =>
      this.transaction(async (c) => {
        await c.query(insert, values);
        await c.query(intentQuery.sql, intentQuery.values);
      }),
    );
  }

  async getOperation(id: string): Promise<OperationRecord | undefined> {
    const sql = `SELECT ${OP_COLUMNS.join(", ")} FROM ${this.s}operations WHERE id = $1`;
    return this.run(async () => {
      const row = (await this.pool.query(sql, [text(id)])).rows[0] as Row | undefined;
      return row ? toOperation(row) : undefined;
    });
  }

  async listOperations(query: OperationQuery): Promise<OperationPage> {
    const q = checkOperationQuery(query);
    if (q.visibility && q.visibility.exact.length === 0 && q.visibility.prefixes.length === 0)
      return { operations: [], nextPageToken: "" };
    const where: string[] = [];
    const values: unknown[] = [];
    const param = (v: unknown) => {
      values.push(v);
      return `$${values.length}`;
    };
    for (const [column, value] of [
      ["namespace", q.namespace],
      ["release_name", q.release],
      ["state", q.state],
      ["kind", q.kind],
    ] as const) {
      if (value) where.push(`${column} = ${param(text(value))}`);
    }
    if (q.since) where.push(`created_at >= ${param(q.since)}`);
    if (q.visibility) {
      where.push(
        `(namespace = ANY(${param(q.visibility.exact.map(text))}::text[]) OR namespace LIKE ANY(${param(q.visibility.prefixes.map((p) => likePrefix(text(p))))}::text[]))`,
      );
    }
    if (q.after) where.push(`(created_at, id) < (${param(new Date(q.after.timeMs))}, ${param(text(q.after.id))})`);
    const sql =
      `SELECT ${OP_COLUMNS.join(", ")} FROM ${this.s}operations` +
      (where.length > 0 ? ` WHERE ${where.join(" AND ")}` : "") +
      ` ORDER BY created_at DESC, id DESC LIMIT ${param(q.pageSize + 1)}`;
    return this.run(async () =>
      operationPage(((await this.pool.query(sql, values)).rows as Row[]).map(toOperation), q.pageSize),
    );
  }

  async startOperation(id: string, replica: string, at: Date): Promise<boolean> {
    const sql = `UPDATE ${this.s}operations SET state = 'running', started_at = $3, updated_at = now() WHERE id = $1 AND state = 'queued' AND replica = $2`;
    return this.run(async () => (await this.pool.query(sql, [text(id), text(replica), at])).rowCount === 1);
  }

  async saveProgress(id: string, steps: StepRecord[], progress: ProgressRecord | undefined): Promise<void> {
    const sql = `UPDATE ${this.s}operations SET steps = $2, progress = $3, updated_at = now() WHERE id = $1 AND state IN ('queued', 'running')`;
    await this.run(() => this.pool.query(sql, [text(id), text(stepsJson(steps)), progressJson(progress)]));
  }

  async finishOperation(
    id: string,
    end: OperationEnd,
    outcome: AuditRecord | undefined,
    from: OperationState[] = ["queued", "running"],
  ): Promise<boolean> {
    const sql =
      `UPDATE ${this.s}operations SET state = $2, finished_at = $3, updated_at = now(), steps = $4, progress = $5, response = $6, ` +
      "error_code = $7, error_message = $8, error_reason = $9, request = '' WHERE id = $1 AND state = ANY($10::text[]) " +
      `RETURNING ${OP_COLUMNS.join(", ")}`;
    const values = [
      text(id),
      end.state,
      end.finishedAt,
      text(stepsJson(end.steps)),
      progressJson(end.progress),
      text(end.response ?? ""),
      text(end.error?.code ?? ""),
      text(end.error?.message ?? ""),
      text(end.error?.reason ?? ""),
      from,
    ];
    const outcomeQuery = outcome ? this.appendQuery(outcome) : undefined;
    return this.run(() =>
      this.transaction(async (c) => {
        const updated = await c.query(sql, values);
        if (updated.rowCount !== 1) return false;
        if (outcomeQuery) await c.query(outcomeQuery.sql, outcomeQuery.values);
        if (this.planner) await this.enqueueIn(c, this.planner(toOperation(updated.rows[0] as Row)));
        return true;
      }),
    );
  }

  async requestCancel(id: string): Promise<void> {
    const sql = `UPDATE ${this.s}operations SET cancel_requested = true, updated_at = now() WHERE id = $1 AND state IN ('queued', 'running')`;
    await this.run(() => this.pool.query(sql, [text(id)]));
  }

  async cancelRequested(ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const sql = `SELECT id FROM ${this.s}operations WHERE cancel_requested AND id = ANY($1::text[])`;
    return this.run(async () => ((await this.pool.query(sql, [ids.map(text)])).rows as Row[]).map((r) => String(r.id)));
  }

  async adoptQueued(replica: string, replicaTtlMs: number, limit: number): Promise<OperationRecord[]> {
    // Row locks with SKIP LOCKED: replicas adopting at once take different operations.
    const sql = `
      UPDATE ${this.s}operations o SET replica = $1, updated_at = now()
      WHERE o.id IN (
        SELECT id FROM ${this.s}operations
        WHERE state = 'queued' AND replica <> $1
          AND replica NOT IN (SELECT id FROM ${this.s}replicas WHERE heartbeat_at > now() - make_interval(secs => $2::double precision / 1000))
        ORDER BY created_at, id
        LIMIT $3
        FOR UPDATE SKIP LOCKED
      ) AND o.state = 'queued'
      RETURNING ${OP_COLUMNS.map((c) => `o.${c}`).join(", ")}`;
    return this.run(async () =>
      ((await this.pool.query(sql, [text(replica), replicaTtlMs, limit])).rows as Row[])
        .map(toOperation)
        .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : 1)),
    );
  }

  async purgeOperations(before: Date): Promise<number> {
    const sql = `DELETE FROM ${this.s}operations WHERE finished_at IS NOT NULL AND finished_at < $1`;
    // Settled webhook deliveries (and their attempts) go with the operations of that age.
    const settled = `SELECT id FROM ${this.s}webhook_deliveries WHERE state <> 'pending' AND updated_at < $1`;
    return this.run(() =>
      this.transaction(async (c) => {
        await c.query(`DELETE FROM ${this.s}webhook_attempts WHERE delivery_id IN (${settled})`, [before]);
        await c.query(`DELETE FROM ${this.s}webhook_deliveries WHERE state <> 'pending' AND updated_at < $1`, [before]);
        return (await c.query(sql, [before])).rowCount ?? 0;
      }),
    );
  }

  // ---------------------------------------------------------------- webhook outbox

  setOutboxPlanner(planner: OutboxPlanner | undefined): void {
    this.planner = planner;
  }

  async enqueueDeliveries(rows: NewDelivery[]): Promise<void> {
    if (rows.length === 0) return;
    return this.run(() => this.transaction((c) => this.enqueueIn(c, rows)));
  }

  private async enqueueIn(c: pg.PoolClient, rows: NewDelivery[]): Promise<void> {
    for (const d of rows) {
      await c.query(
        `INSERT INTO ${this.s}webhook_deliveries (${DELIVERY_COLUMNS.join(", ")}) VALUES ` +
          "($1, $2, $3, $4, $5, $6, 'pending', 0, 0, $7, $7, now(), 0, '', NULL, NULL) ON CONFLICT DO NOTHING",
        [
          text(d.id),
          text(d.subscriptionId),
          d.eventType,
          text(d.operationId),
          text(d.namespace),
          text(d.payload),
          d.createdAt,
        ],
      );
    }
  }

  async claimDeliveries(replica: string, claimMs: number, limit: number): Promise<DeliveryRecord[]> {
    // Row locks with SKIP LOCKED: replicas claiming at once take different deliveries.
    const sql = `
      UPDATE ${this.s}webhook_deliveries d SET claimed_by = $1, claimed_until = now() + make_interval(secs => $2::double precision / 1000)
      WHERE d.id IN (
        SELECT id FROM ${this.s}webhook_deliveries
        WHERE state = 'pending' AND next_attempt_at <= now() AND (claimed_until IS NULL OR claimed_until < now())
        ORDER BY next_attempt_at, id
        LIMIT $3
        FOR UPDATE SKIP LOCKED
      ) AND d.state = 'pending'
      RETURNING ${DELIVERY_COLUMNS.map((c) => `d.${c}`).join(", ")}`;
    return this.run(async () =>
      ((await this.pool.query(sql, [text(replica), claimMs, limit])).rows as Row[])
        .map(toDelivery)
        .sort((a, b) => a.nextAttemptAt.getTime() - b.nextAttemptAt.getTime() || (a.id < b.id ? -1 : 1)),
    );
  }

  async recordAttempt(attempt: DeliveryAttempt, result: AttemptResult): Promise<boolean> {
    const update =
      `UPDATE ${this.s}webhook_deliveries SET attempts = attempts + 1, state = $1, next_attempt_at = $2, updated_at = now(), ` +
      "last_status = $3, last_error = $4, claimed_by = NULL, claimed_until = NULL " +
      "WHERE id = $5 AND claimed_by = $6 AND claimed_until >= now() AND attempts + 1 = $7";
    const insert =
      `INSERT INTO ${this.s}webhook_attempts (delivery_id, attempt, at, status_code, duration_ms, error_class, replica) ` +
      "VALUES ($1, $2, $3, $4, $5, $6, $7)";
    return this.run(() =>
      this.transaction(async (c) => {
        const changed = await c.query(update, [
          result.state,
          result.nextAttemptAt ?? attempt.at,
          whole(attempt.statusCode),
          text(attempt.errorClass),
          text(attempt.deliveryId),
          text(attempt.replica),
          attempt.attempt,
        ]);
        if (changed.rowCount !== 1) return false;
        await c.query(insert, [
          text(attempt.deliveryId),
          attempt.attempt,
          attempt.at,
          whole(attempt.statusCode),
          whole(attempt.durationMs),
          text(attempt.errorClass),
          text(attempt.replica),
        ]);
        return true;
      }),
    );
  }

  async releaseClaim(id: string, replica: string, at: Date): Promise<void> {
    const sql = `UPDATE ${this.s}webhook_deliveries SET claimed_by = NULL, claimed_until = NULL, next_attempt_at = $3 WHERE id = $1 AND claimed_by = $2 AND state = 'pending'`;
    await this.run(() => this.pool.query(sql, [text(id), text(replica), at]));
  }

  async getDelivery(id: string): Promise<DeliveryRecord | undefined> {
    const sql = `SELECT ${DELIVERY_COLUMNS.join(", ")} FROM ${this.s}webhook_deliveries WHERE id = $1`;
    return this.run(async () => {
      const rows = (await this.pool.query(sql, [text(id)])).rows as Row[];
      return rows[0] ? toDelivery(rows[0]) : undefined;
    });
  }

  async listDeliveries(query: DeliveryQuery): Promise<DeliveryPage> {
    const q = checkDeliveryQuery(query);
    const where: string[] = [];
    const params: unknown[] = [];
    for (const [column, value] of [
      ["subscription_id", q.subscriptionId],
      ["operation_id", q.operationId],
      ["state", q.state],
    ] as const) {
      if (value) {
        params.push(text(value));
        where.push(`${column} = $${params.length}`);
      }
    }
    if (q.after) {
      params.push(new Date(q.after.timeMs), q.after.id);
      where.push(`(created_at, id) < ($${params.length - 1}, $${params.length})`);
    }
    params.push(q.pageSize + 1);
    const sql =
      `SELECT ${DELIVERY_COLUMNS.join(", ")} FROM ${this.s}webhook_deliveries` +
      (where.length > 0 ? ` WHERE ${where.join(" AND ")}` : "") +
      ` ORDER BY created_at DESC, id DESC LIMIT $${params.length}`;
    return this.run(async () =>
      deliveryPage(((await this.pool.query(sql, params)).rows as Row[]).map(toDelivery), q.pageSize),
    );
  }

  async listAttempts(deliveryId: string): Promise<DeliveryAttempt[]> {
    const sql = `SELECT delivery_id, attempt, at, status_code, duration_ms, error_class, replica FROM ${this.s}webhook_attempts WHERE delivery_id = $1 ORDER BY attempt`;
    return this.run(async () =>
      ((await this.pool.query(sql, [text(deliveryId)])).rows as Row[]).map((r) => ({
        deliveryId: String(r.delivery_id),
        attempt: Number(r.attempt),
        at: r.at as Date,
        statusCode: Number(r.status_code),
        durationMs: Number(r.duration_ms),
        errorClass: String(r.error_class),
        replica: String(r.replica),
      })),
    );
  }

  async redeliver(id: string): Promise<DeliveryRecord | undefined | false> {
    const sql =
      `UPDATE ${this.s}webhook_deliveries SET state = 'pending', schedule_from = attempts, next_attempt_at = now(), updated_at = now(), ` +
      `claimed_by = NULL, claimed_until = NULL WHERE id = $1 AND state IN ('delivered', 'dead') RETURNING ${DELIVERY_COLUMNS.join(", ")}`;
    return this.run(async () => {
      const rows = (await this.pool.query(sql, [text(id)])).rows as Row[];
      if (rows[0]) return toDelivery(rows[0]);
      return (await this.getDelivery(id)) ? false : undefined;
    });
  }

  async disableEndpoint(subscriptionId: string, url: string, at: Date): Promise<void> {
    return this.run(() =>
      this.transaction(async (c) => {
        await c.query(
          `INSERT INTO ${this.s}webhook_disabled_endpoints (subscription_id, url, disabled_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
          [text(subscriptionId), text(url), at],
        );
        await c.query(
          `UPDATE ${this.s}webhook_deliveries SET state = 'disabled', updated_at = now(), claimed_by = NULL, claimed_until = NULL WHERE subscription_id = $1 AND state = 'pending'`,
          [text(subscriptionId)],
        );
      }),
    );
  }

  async disabledEndpoints(): Promise<Set<string>> {
    const sql = `SELECT subscription_id, url FROM ${this.s}webhook_disabled_endpoints`;
    return this.run(
      async () =>
        new Set(
          ((await this.pool.query(sql)).rows as Row[]).map((r) => `${String(r.subscription_id)} ${String(r.url)}`),
        ),
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  // ---------------------------------------------------------------- plumbing

  /** run maps every database failure to PaasError("unavailable") with a reason that names no credentials. */
  private async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw unavailable("the store is closed");
    try {
      return await fn();
    } catch (err) {
      if (err instanceof PaasError) throw err;
      throw unavailable(reasonOf(err), err);
    }
  }

  /** transaction runs fn in BEGIN … COMMIT on one client; a client that failed is destroyed, not reused. */
  private async transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    // Between two queries of ours a checked-out client has no pool listener: keep its 'error' from crashing us.
    const onError = (err: Error) =>
      this.logger?.warn(
        { reason: reasonOf(err), code: codeOf(err) },
        "audit store: database connection failed during a transaction",
      );
    client.on("error", onError);
    let failed = false;
    try {
      await client.query("BEGIN");
      const result = await fn(client);
      await client.query("COMMIT");
      return result;
    } catch (err) {
      failed = true;
      await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      client.off("error", onError);
      client.release(failed);
    }
  }
}

/** text makes a string storable in a PostgreSQL text column (which cannot hold NUL). */
function text(s: string): string {
  return s.includes("\0") ? s.replaceAll("\0", "\uFFFD") : s;
}

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** reasonOf names a failure in a few words taken from a fixed list (never the server's or the URL's text). */
function reasonOf(err: unknown): string {
  const code = codeOf(err) ?? "";
  const message = err instanceof Error ? err.message : "";
  switch (code) {
    case "ECONNREFUSED":
      return "connection refused";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "database host not found";
    case "ECONNRESET":
    case "EPIPE":
    case "ETIMEDOUT":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `network error (${code})`;
    case "57014":
      return "statement timeout";
    case "57P01":
    case "57P02":
    case "57P03":
      return "the database server is shutting down or starting up";
    case "28P01":
    case "28000":
      return "authentication failed";
    case "3D000":
      return "the database does not exist";
    case "42P01":
      return "the schema is missing (migrate has not run)";
    case "53300":
      return "too many connections";
  }
  if (/^08/.test(code)) return `connection failure (${code})`;
  if (/^53/.test(code)) return `the database server is out of resources (${code})`;
  if (/timeout exceeded when trying to connect|connection timeout/i.test(message)) return "connection timeout";
  if (/Query read timeout/i.test(message)) return "query timeout";
  if (/Connection terminated|connection ended/i.test(message)) return "connection lost";
  if (/pool after calling end/i.test(message)) return "the store is closed";
  if (/^[0-9A-Z]{5}$/.test(code)) return `database error ${code}`;
  return "database error";
}

function toOperation(r: Row): OperationRecord {
  const at = (v: unknown) => (v instanceof Date ? v : undefined);
  return operationFromRow(r, {
    createdAt: r.created_at as Date,
    startedAt: at(r.started_at),
    finishedAt: at(r.finished_at),
    updatedAt: r.updated_at as Date,
  });
}

function toDelivery(r: Row): DeliveryRecord {
  return deliveryFromRow(r, {
    createdAt: r.created_at as Date,
    nextAttemptAt: r.next_attempt_at as Date,
    updatedAt: r.updated_at as Date,
  });
}

function toRecord(r: Row): AuditRecord {
  return recordFromRow(r, r.event_time as Date);
}
