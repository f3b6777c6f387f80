import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { openAuditStore } from "../../../src/audit/open-store.ts";
import { PostgresAuditStore } from "../../../src/audit/postgres-store.ts";
import { PaasError } from "../../../src/errors.ts";
import { freePort } from "../../support/postgres.ts";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function capture() {
  const lines: string[] = [];
  return { lines, logger: pino({ level: "debug" }, { write: (l: string) => void lines.push(l) }) };
}

async function rejection(p: Promise<unknown>): Promise<{ err: PaasError; ms: number }> {
  const started = Date.now();
  const err = await p.then(
    () => new Error("expected a rejection"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PaasError);
  return { err: err as PaasError, ms: Date.now() - started };
}

const PASSWORD = "s3cret-Pa55word";

describe("openAuditStore", () => {
  it("opens SQLite (creating its directory) when there is no database URL", async () => {
    const dir = await mkdtemp(join(tmpdir(), "paas-audit-open-"));
    dirs.push(dir);
    const { lines, logger } = capture();
    const store = await openAuditStore({ sqlitePath: join(dir, "x", "audit.db"), databaseUrl: "", logger });
    try {
      expect(store.kind).toBe("sqlite");
      expect((await store.list({ pageSize: 1 })).records).toEqual([]);
      expect(lines.join("")).toContain('"kind":"sqlite"');
    } finally {
      await store.close();
    }
  });

  it("refuses a URL of another scheme with invalid_argument", async () => {
    const { logger } = capture();
    const { err } = await rejection(
      openAuditStore({ databaseUrl: `mysql://u:${PASSWORD}@h/db`, sqlitePath: "/x", logger }),
    );
    expect(err.kind).toBe("invalid_argument");
    expect(err.message).not.toContain(PASSWORD);
    expect(() => new PostgresAuditStore({ connectionString: `postgres://u:${PASSWORD}@[bad/db` })).toThrow(/malformed/);
  });

  it("rejects with unavailable at once when nothing listens; neither message nor log names the password", async () => {
    const port = await freePort();
    const { lines, logger } = capture();
    const { err, ms } = await rejection(
      openAuditStore({
        databaseUrl: `postgresql://paas:${PASSWORD}@127.0.0.1:${port}/audit`,
        sqlitePath: "/x",
        logger,
      }),
    );
    expect(err.kind).toBe("unavailable");
    expect(err.message).toBe("audit store unavailable: connection refused");
    expect(ms).toBeLessThan(2000);
    expect(lines.join("")).not.toContain(PASSWORD);
  });

  it("gives up after the connect timeout on a server that accepts but never answers", async () => {
    const sockets = new Set<Socket>();
    const server: Server = createServer((s) => {
      sockets.add(s);
      s.on("error", () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as { port: number };
    const store = new PostgresAuditStore({
      connectionString: `postgres://paas:${PASSWORD}@127.0.0.1:${port}/audit`,
      connectTimeoutMs: 500,
    });
    try {
      const { err, ms } = await rejection(store.heartbeat("r1"));
      expect(err.kind).toBe("unavailable");
      expect(err.message).toBe("audit store unavailable: connection timeout");
      expect(ms).toBeGreaterThanOrEqual(400);
      expect(ms).toBeLessThan(3000);
      // The default is about two seconds.
      const fallback = new PostgresAuditStore({
        connectionString: `postgres://paas:${PASSWORD}@127.0.0.1:${port}/audit`,
      });
      const second = await rejection(fallback.purgeExpired());
      await fallback.close();
      expect(second.err.kind).toBe("unavailable");
      expect(second.ms).toBeGreaterThanOrEqual(1500);
      expect(second.ms).toBeLessThan(4000);
      expect(second.err.message).not.toContain(PASSWORD);
    } finally {
      await store.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});
