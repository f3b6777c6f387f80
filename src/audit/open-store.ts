import type { Logger } from "pino";
import { PaasError } from "../errors.ts";
import { PostgresAuditStore } from "./postgres-store.ts";
import { SqliteAuditStore } from "./sqlite-store.ts";
import type { AuditStore } from "../domain/audit.ts";
import { metrics, since } from "../metrics/metrics.ts";

export interface OpenAuditStoreOptions {
  /** AUDIT_DATABASE_URL: postgres:// or postgresql://; when set, PostgreSQL is used. */
  databaseUrl?: string;
  /** AUDIT_SQLITE_PATH: the SQLite file used when there is no databaseUrl. */
  sqlitePath: string;
  logger: Logger;
}

/**
 * openAuditStore opens PostgreSQL when databaseUrl is set, else SQLite at sqlitePath, and
 * creates or migrates the schema. It rejects with PaasError("invalid_argument") for a URL of
 * another scheme and PaasError("unavailable") when the store cannot be reached; neither the
 * URL nor its password appears in errors or logs.
 */
export async function openAuditStore(opts: OpenAuditStoreOptions): Promise<AuditStore> {
  let store: AuditStore;
  let where: Record<string, string>;
  if (opts.databaseUrl) {
    if (!/^postgres(ql)?:\/\//i.test(opts.databaseUrl)) {
      throw new PaasError("invalid_argument", "the audit database URL must start with postgres:// or postgresql://");
    }
    store = new PostgresAuditStore({ connectionString: opts.databaseUrl, logger: opts.logger });
    where = describeUrl(opts.databaseUrl);
  } else {
    store = new SqliteAuditStore({ path: opts.sqlitePath });
    where = { path: opts.sqlitePath };
  }
  try {
    await store.migrate();
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  opts.logger.info({ kind: store.kind, ...where }, "audit store opened");
  return measured(store);
}

/** The store's methods that write, timed in paas_audit_store_write_seconds (label op). */
const WRITES = new Set<string>([
  "append",
  "heartbeat",
  "claimIdempotency",
  "completeIdempotency",
  "abandonIdempotency",
  "purgeExpired",
  "createOperation",
  "startOperation",
  "saveProgress",
  "finishOperation",
  "requestCancel",
  "adoptQueued",
  "purgeOperations",
]);

/** measured wraps a store so that every write is timed and every failed write counted. */
export function measured(store: AuditStore): AuditStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof prop !== "string" || !WRITES.has(prop) || typeof value !== "function") return value;
      return async (...args: unknown[]) => {
        const labels = { store: target.kind, op: prop };
        const started = performance.now();
        try {
          return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        } catch (err) {
          metrics.auditWriteFailures.inc(labels);
          throw err;
        } finally {
          metrics.auditWrite.observe(labels, since(started));
        }
      };
    },
  });
}

/** describeUrl keeps what a log may show of a database URL: host, port and database name. */
function describeUrl(url: string): Record<string, string> {
  try {
    const u = new URL(url);
    return { host: u.hostname, port: u.port || "5432", database: decodeURIComponent(u.pathname.replace(/^\//, "")) };
  } catch {
    return {};
  }
}
