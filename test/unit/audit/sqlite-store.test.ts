import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SqliteAuditStore } from "../../../src/audit/sqlite-store.ts";
import { PaasError } from "../../../src/errors.ts";
import { auditStoreContract, record } from "../../support/audit-contract.ts";

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "paas-audit-sqlite-"));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

auditStoreContract("SQLite", async () => {
  const dir = await tempDir();
  const path = join(dir, "nested", "audit.db");
  return {
    open: async () => {
      const store = new SqliteAuditStore({ path });
      await store.migrate();
      return store;
    },
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
});

describe("SqliteAuditStore", () => {
  it("creates the directory, uses WAL and synchronous=FULL, records the schema version", async () => {
    const path = join(await tempDir(), "a", "b", "audit.db");
    const store = new SqliteAuditStore({ path });
    await store.migrate();
    await store.migrate();
    await store.append(record());
    const inner = (store as unknown as { db: DatabaseSync }).db;
    expect(inner.prepare("PRAGMA synchronous").get()).toEqual({ synchronous: 2 }); // FULL
    await store.close();
    const raw = new DatabaseSync(path);
    try {
      expect(raw.prepare("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
      expect(raw.prepare("SELECT version FROM schema_migrations").all()).toEqual([
        { version: 1 },
        { version: 2 },
        { version: 3 },
      ]);
      expect(raw.prepare("SELECT count(*) AS n FROM audit_events").get()).toEqual({ n: 1 });
    } finally {
      raw.close();
    }
    expect(store.kind).toBe("sqlite");
  });

  it("also runs in memory (service tests), keeping its data across failed calls", async () => {
    const store = new SqliteAuditStore({ path: ":memory:" });
    await store.migrate();
    const r = record();
    await store.append(r);
    await expect(store.list({ pageSize: 1, pageToken: "%" })).rejects.toThrow(PaasError);
    expect((await store.list({ pageSize: 5 })).records).toStrictEqual([r]);
    await store.close();
  });

  it("rejects with unavailable when the file cannot be opened, and works once it can", async () => {
    const dir = await tempDir();
    // A regular file where the directory should be.
    await writeFile(join(dir, "blocked"), "");
    const store = new SqliteAuditStore({ path: join(dir, "blocked", "audit.db") });
    const err = await store.migrate().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PaasError);
    expect((err as PaasError).kind).toBe("unavailable");
    expect((err as PaasError).message).toMatch(/^audit store unavailable: /);
    await rm(join(dir, "blocked"));
    await store.migrate();
    expect(await store.append(record())).toBe("written");
    await store.close();
  });

  it("rejects with unavailable while another connection holds the write lock past busy_timeout", async () => {
    const path = join(await tempDir(), "audit.db");
    const store = new SqliteAuditStore({ path, busyTimeoutMs: 100 });
    await store.migrate();
    const other = new DatabaseSync(path);
    other.exec("BEGIN IMMEDIATE");
    const started = Date.now();
    const err = await store.append(record()).catch((e: unknown) => e);
    expect((err as PaasError).kind).toBe("unavailable");
    expect((err as PaasError).message).toMatch(/locked|busy/);
    expect(Date.now() - started).toBeLessThan(3000);
    other.exec("ROLLBACK");
    other.close();
    expect(await store.append(record())).toBe("written");
    await store.close();
  });
});
