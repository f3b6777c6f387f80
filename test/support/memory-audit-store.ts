import { createClient, createRouterTransport, type ConnectRouter } from "@connectrpc/connect";
import pino from "pino";
import { AuditService } from "../../gen/paas/v1/audit_pb.js";
import type { AuditPage, AuditQuery, AuditRecord, AuditStore } from "../../src/domain/audit.ts";
import { sha256 } from "../../src/auth/key-file.ts";
import { KeyStore } from "../../src/auth/key-store.ts";
import { Scope, type Verb } from "../../src/auth/scopes.ts";
import { PaasError } from "../../src/errors.ts";
import { apiKeyInterceptor, scopeInterceptor } from "../../src/interceptors/api-key.ts";
import { namespacePrefixInterceptor } from "../../src/interceptors/namespace-prefix.ts";
import { observabilityInterceptor } from "../../src/interceptors/observability.ts";
import { createAuditService } from "../../src/services/audit-service.ts";

/**
 * MemoryAuditStore is an in-memory AuditStore for unit tests of the query side: `list` follows
 * the interface faithfully (filters, visibility, newest first by time then id, opaque tokens
 * that reject when malformed); `append` stores records; everything else throws.
 */
export class MemoryAuditStore implements AuditStore {
  readonly kind = "memory";
  readonly records: AuditRecord[] = [];
  /** Every query `list` was called with, to assert on what the handler asked for. */
  readonly queries: AuditQuery[] = [];
  /** When set, `list` rejects with it (e.g. an unreachable store). */
  failWith: Error | undefined;

  async append(record: AuditRecord): Promise<"written" | "duplicate"> {
    if (
      record.stage === "outcome" &&
      this.records.some((r) => r.stage === "outcome" && r.operationId === record.operationId)
    )
      return "duplicate";
    this.records.push(record);
    return "written";
  }

  async list(query: AuditQuery): Promise<AuditPage> {
    this.queries.push(query);
    if (this.failWith) throw this.failWith;
    if (!Number.isInteger(query.pageSize) || query.pageSize < 1 || query.pageSize > 1000)
      throw new Error(`store: pageSize ${query.pageSize} out of range`);
    const after = query.pageToken === undefined ? undefined : decodeToken(query.pageToken);
    const matching = this.records
      .filter((r) => matches(r, query))
      .sort((a, b) => b.time.getTime() - a.time.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
      .filter(
        (r) =>
          after === undefined || r.time.getTime() < after.time || (r.time.getTime() === after.time && r.id < after.id),
      );
    const records = matching.slice(0, query.pageSize);
    const last = records.at(-1);
    const nextPageToken = matching.length > query.pageSize && last ? encodeToken(last) : "";
    return { records, nextPageToken };
  }

  migrate(): Promise<void> {
    return notUsed();
  }
  openIntents(): Promise<AuditRecord[]> {
    return notUsed();
  }
  heartbeat(): Promise<void> {
    return notUsed();
  }
  liveReplicas(): Promise<Set<string>> {
    return notUsed();
  }
  claimIdempotency(): Promise<never> {
    return notUsed();
  }
  completeIdempotency(): Promise<void> {
    return notUsed();
  }
  abandonIdempotency(): Promise<void> {
    return notUsed();
  }
  purgeExpired(): Promise<number> {
    return notUsed();
  }
  createOperation(): Promise<never> {
    return notUsed();
  }
  getOperation(): Promise<never> {
    return notUsed();
  }
  listOperations(): Promise<never> {
    return notUsed();
  }
  startOperation(): Promise<never> {
    return notUsed();
  }
  saveProgress(): Promise<never> {
    return notUsed();
  }
  finishOperation(): Promise<never> {
    return notUsed();
  }
  requestCancel(): Promise<never> {
    return notUsed();
  }
  cancelRequested(): Promise<never> {
    return notUsed();
  }
  adoptQueued(): Promise<never> {
    return notUsed();
  }
  purgeOperations(): Promise<never> {
    return notUsed();
  }
  async close(): Promise<void> {}

  // The webhook outbox is not kept in memory: these stores back audit-service tests only;
  // the outbox runs against SQLite and PostgreSQL (test/support/audit-contract.ts).
  setOutboxPlanner(): void {}
  async enqueueDeliveries(): Promise<void> {
    throw new PaasError("failed_precondition", "the in-memory audit store keeps no webhook outbox");
  }
  async claimDeliveries(): Promise<never[]> {
    return [];
  }
  async recordAttempt(): Promise<boolean> {
    return false;
  }
  async releaseClaim(): Promise<void> {}
  async getDelivery(): Promise<undefined> {
    return undefined;
  }
  async listDeliveries(): Promise<{ deliveries: never[]; nextPageToken: string }> {
    return { deliveries: [], nextPageToken: "" };
  }
  async listAttempts(): Promise<never[]> {
    return [];
  }
  async redeliver(): Promise<undefined> {
    return undefined;
  }
  async disableEndpoint(): Promise<void> {}
  async disabledEndpoints(): Promise<Set<string>> {
    return new Set();
  }
}

function matches(r: AuditRecord, q: AuditQuery): boolean {
  if (q.namespace !== undefined && r.namespace !== q.namespace) return false;
  if (q.release !== undefined && r.release !== q.release) return false;
  if (q.caller !== undefined && r.caller !== q.caller) return false;
  if (q.operationId !== undefined && r.operationId !== q.operationId) return false;
  if (q.since !== undefined && r.time.getTime() < q.since.getTime()) return false;
  if (q.until !== undefined && r.time.getTime() >= q.until.getTime()) return false;
  if (q.visibility !== undefined) {
    if (r.namespace === "") return false;
    const { exact, prefixes } = q.visibility;
    if (!exact.includes(r.namespace) && !prefixes.some((p) => r.namespace.startsWith(p))) return false;
  }
  return true;
}

function encodeToken(r: AuditRecord): string {
  return Buffer.from(JSON.stringify({ t: r.time.getTime(), i: r.id })).toString("base64url");
}

function decodeToken(token: string): { time: number; id: string } {
  try {
    const v = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { t?: unknown; i?: unknown };
    if (typeof v.t === "number" && typeof v.i === "string") return { time: v.t, id: v.i };
  } catch {
    // fall through
  }
  throw new PaasError("invalid_argument", "page_token is malformed");
}

async function notUsed(): Promise<never> {
  throw new Error("MemoryAuditStore: not used by these tests");
}

let seq = 0;

/** auditRecord builds a record with defaults; `time` and `namespace` are what tests mostly vary. */
export function auditRecord(over: Partial<AuditRecord> = {}): AuditRecord {
  seq += 1;
  return {
    id: `rec-${String(seq).padStart(6, "0")}`,
    time: new Date("2026-01-01T00:00:00Z"),
    stage: "intent",
    operationId: `op-${seq}`,
    caller: "key-0001",
    sourceIp: "10.0.0.1",
    userAgent: "test",
    method: "paas.v1.ReleaseService/InstallRelease",
    namespace: "paas-ws-a",
    release: "web",
    chartReference: "oci://r.example/c/nginx",
    chartVersion: "1.0.0",
    valuesSha256: "",
    idempotencyKey: "",
    revisionBefore: 0,
    revisionAfter: 0,
    durationMs: 0,
    errorCode: "",
    errorMessage: "",
    replica: "replica-1",
    requestId: `req-${seq}`,
    ...over,
  };
}

// Not harness.ts's LogLines: importing the harness would pull in the whole app.
class LogLines {
  lines: string[] = [];
  write(line: string): void {
    this.lines.push(line);
  }
}

/** AuditTestKey is a scoped key for createAuditTestApp: the plain key, its id and its scope. */
export interface AuditTestKey {
  id: string;
  key: string;
  namespaces: string[];
  verbs: Verb[];
}

/**
 * createAuditTestApp is the audit part of the request path without the rest of the app: the
 * AuditService on `store` behind the app's interceptors (observability, API key, namespace
 * prefix, scope), unscoped `adminKey` plus the scoped `keys`.
 */
export function createAuditTestApp(opts: {
  store: AuditStore;
  prefix: string;
  adminKey: string;
  keys: AuditTestKey[];
}) {
  const logs = new LogLines();
  const logger = pino({ level: "debug" }, logs);
  const keys = new KeyStore({
    staticKeys: [opts.adminKey],
    prefix: opts.prefix,
    namedKeys: opts.keys.map((k) => ({ id: k.id, digest: sha256(k.key), scope: new Scope(k.namespaces, k.verbs) })),
  });
  const interceptors = [
    observabilityInterceptor(logger),
    apiKeyInterceptor(keys),
    namespacePrefixInterceptor(opts.prefix),
    scopeInterceptor(),
  ];
  const service = createAuditService({ store: opts.store, namespacePrefix: opts.prefix });
  const routes = (router: ConnectRouter) => {
    router.service(AuditService, service);
  };
  const client = (apiKey: string | null) =>
    createClient(
      AuditService,
      createRouterTransport(routes, {
        router: { interceptors },
        transport: {
          interceptors: [
            (next) => (req) => {
              if (apiKey !== null) req.header.set("x-api-key", apiKey);
              return next(req);
            },
          ],
        },
      }),
    );
  return { routes, interceptors, keys, logger, logs, client };
}
