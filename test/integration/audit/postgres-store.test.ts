import { randomBytes } from "node:crypto";
import pg from "pg";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newOperationId } from "../../../src/audit/ids.ts";
import { openAuditStore } from "../../../src/audit/open-store.ts";
import { PostgresAuditStore } from "../../../src/audit/postgres-store.ts";
import type { AuditStore } from "../../../src/domain/audit.ts";
import { PaasError } from "../../../src/errors.ts";
import { auditStoreContract, record } from "../../support/audit-contract.ts";
import { startPrivatePostgres, type PrivatePostgres } from "../../support/postgres.ts";

// The testbed's PostgreSQL (scripts/testbed/postgres.sh); each test gets a schema of its own,
// dropped afterwards, so reruns start clean.
const url = process.env.AUDIT_TEST_DATABASE_URL;
if (!url) {
  throw new Error(
    "AUDIT_TEST_DATABASE_URL is not set. Run 'npm run testbed:up' and 'set -a; source .testbed/env; set +a' (npm test does both).",
  );
}
const databaseUrl: string = url;
const runTag = randomBytes(3).toString("hex");
let schemas = 0;
const newSchema = () => `audit_t_${runTag}_${++schemas}`;

async function admin<T>(fn: (c: pg.Client) => Promise<T>, connectionString = databaseUrl): Promise<T> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
const dropSchema = (schema: string) => admin((c) => c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));

auditStoreContract("PostgreSQL", async () => {
  const schema = newSchema();
  return {
    open: async () => {
      const store = new PostgresAuditStore({ connectionString: databaseUrl, schema });
      await store.migrate();
      return store;
    },
    dispose: async () => {
      await dropSchema(schema);
    },
  };
});

/** failure awaits a promise that must reject and returns the error and how long it took. */
async function failure(p: Promise<unknown>): Promise<{ err: PaasError; ms: number }> {
  const started = Date.now();
  const err = await p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PaasError);
  return { err: err as PaasError, ms: Date.now() - started };
}

describe("PostgresAuditStore", () => {
  it("migrates once when two replicas start at once", async () => {
    const schema = newSchema();
    const stores = Array.from({ length: 4 }, () => new PostgresAuditStore({ connectionString: databaseUrl, schema }));
    try {
      await Promise.all(stores.map((s) => s.migrate()));
      await Promise.all(stores.map((s) => s.migrate()));
      const versions = await admin((c) => c.query(`SELECT version FROM "${schema}".schema_migrations`));
      expect(versions.rows).toEqual([{ version: 1 }, { version: 2 }, { version: 3 }]);
      const r = record();
      expect(await stores[0]!.append(r)).toBe("written");
      expect((await stores[3]!.list({ pageSize: 5 })).records.map((x) => x.id)).toEqual([r.id]);
      expect(stores[0]!.kind).toBe("postgres");
    } finally {
      for (const s of stores) await s.close();
      await dropSchema(schema);
    }
  });

  it("openAuditStore picks PostgreSQL for a postgres:// URL and migrates", async () => {
    // The URL's own search_path (libpq "options") puts the tables into a schema of this test.
    const schema = newSchema();
    await admin((c) => c.query(`CREATE SCHEMA "${schema}"`));
    const u = new URL(databaseUrl);
    u.searchParams.set("options", `-c search_path=${schema}`);
    const store = await openAuditStore({
      databaseUrl: u.toString(),
      sqlitePath: "/nonexistent/never-used.db",
      logger: pino({ level: "silent" }),
    });
    try {
      expect(store.kind).toBe("postgres");
      const exists = await admin((c) =>
        c.query("SELECT to_regclass($1) IS NOT NULL AS ok", [`"${schema}".audit_events`]),
      );
      expect(exists.rows[0].ok).toBe(true);
      const r = record();
      await store.append(r);
      expect((await store.list({ pageSize: 5 })).records.map((x) => x.id)).toEqual([r.id]);
    } finally {
      await store.close();
      await dropSchema(schema);
    }
  });

  it("rejects with unavailable (no password in the message) for wrong credentials", async () => {
    const u = new URL(databaseUrl);
    const password = `wrong-${randomBytes(8).toString("hex")}`;
    u.password = password;
    const store = new PostgresAuditStore({ connectionString: u.toString() });
    try {
      const { err } = await failure(store.migrate());
      expect(err.kind).toBe("unavailable");
      expect(err.message).toBe("audit store unavailable: authentication failed");
      expect(err.message).not.toContain(password);
    } finally {
      await store.close();
    }
  });
});

describe("PostgresAuditStore while the server stops and restarts", () => {
  let server: PrivatePostgres;
  let store: AuditStore;
  const logs: string[] = [];

  beforeAll(async () => {
    server = await startPrivatePostgres();
    const logger = pino({ level: "debug" }, { write: (line: string) => void logs.push(line) });
    store = await openAuditStore({ databaseUrl: server.url, sqlitePath: "/nonexistent/never-used.db", logger });
  });
  afterAll(async () => {
    await store?.close();
    await server?.destroy();
  });

  it("fails fast with unavailable while stopped, then works again with the same store object", async () => {
    const before = record();
    expect(await store.append(before)).toBe("written");
    // Several connections in the pool, idle when the server goes away.
    await Promise.all(Array.from({ length: 5 }, () => store.list({ pageSize: 1 })));
    await server.stop();

    const op = newOperationId();
    const calls: Array<[string, () => Promise<unknown>]> = [
      ["append", () => store.append(record())],
      ["list", () => store.list({ pageSize: 10 })],
      ["openIntents", () => store.openIntents()],
      ["heartbeat", () => store.heartbeat("r1")],
      ["liveReplicas", () => store.liveReplicas(1000)],
      [
        "claimIdempotency",
        () =>
          store.claimIdempotency({
            caller: "c",
            key: "k",
            fingerprint: "f",
            operationId: op,
            method: "m",
            ttlMs: 60_000,
          }),
      ],
      ["completeIdempotency", () => store.completeIdempotency("c", "k", op, { ok: true, response: "{}" })],
      ["abandonIdempotency", () => store.abandonIdempotency("c", "k", op)],
      ["purgeExpired", () => store.purgeExpired()],
      ["migrate", () => store.migrate()],
    ];
    for (const [name, call] of calls) {
      const { err, ms } = await failure(call());
      expect({ name, kind: err.kind }).toEqual({ name, kind: "unavailable" });
      expect(err.message).toMatch(/^audit store unavailable: /);
      expect(err.message).not.toContain(server.password);
      expect(err.message).not.toContain(server.url);
      expect(ms, name).toBeLessThan(4000);
    }

    await server.start();
    // The pool reconnects by itself: the same object works again within moments.
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await store.list({ pageSize: 1 });
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    expect((await store.list({ pageSize: 10 })).records.map((r) => r.id)).toEqual([before.id]);
    expect(
      await store.claimIdempotency({
        caller: "c",
        key: "k",
        fingerprint: "f",
        operationId: op,
        method: "m",
        ttlMs: 60_000,
      }),
    ).toEqual({
      state: "claimed",
    });
    await store.heartbeat("r1");
    expect(await store.liveReplicas(60_000)).toEqual(new Set(["r1"]));
    expect(await store.append(record())).toBe("written");
    // Nothing logged names the password or the URL.
    expect(logs.length).toBeGreaterThan(0);
    for (const line of logs) {
      expect(line).not.toContain(server.password);
      expect(line).not.toContain(server.url);
    }
  });
});
