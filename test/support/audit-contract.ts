import { afterEach, describe, expect, it } from "vitest";
import { newAuditId, newOperationId } from "../../src/audit/ids.ts";
import type { AuditQuery, AuditRecord, AuditStore, StoredResult } from "../../src/domain/audit.ts";
import type { OperationRecord } from "../../src/domain/operation.ts";
import type { NewDelivery } from "../../src/domain/webhook.ts";
import { PaasError } from "../../src/errors.ts";

/** AuditTestDatabase is one empty database (file, schema) for one test. */
export interface AuditTestDatabase {
  /** A new store object on this database, migrated; several are several replicas. */
  open(): Promise<AuditStore>;
  /** Removes the database; every store was closed before. */
  dispose(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let seq = 0;

/** record builds an audit record with every field set to something distinct. */
export function record(over: Partial<AuditRecord> = {}): AuditRecord {
  seq++;
  return {
    id: newAuditId(),
    time: new Date(Date.UTC(2030, 0, 1, 12, 0, 0, seq)),
    stage: "intent",
    operationId: newOperationId(),
    caller: `key-${seq}`,
    sourceIp: `10.0.0.${seq % 250}`,
    userAgent: `grpc-node/1.${seq}`,
    method: "paas.v1.ReleaseService/UpgradeRelease",
    namespace: "paas-ws-a",
    release: `rel-${seq}`,
    chartReference: "oci://registry.example/charts/podinfo",
    chartVersion: `6.${seq}.0`,
    valuesSha256: "a".repeat(64),
    idempotencyKey: `idem-${seq}`,
    revisionBefore: seq,
    revisionAfter: seq + 1,
    durationMs: 1000 + seq,
    errorCode: "",
    errorMessage: "",
    replica: "replica-1",
    requestId: `req-${seq}`,
    ...over,
  };
}

async function expectKind(p: Promise<unknown>, kind: string): Promise<PaasError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PaasError);
  expect((err as PaasError).kind).toBe(kind);
  return err as PaasError;
}

/** listAll follows nextPageToken to the end. */
async function listAll(
  store: AuditStore,
  query: Omit<AuditQuery, "pageToken">,
): Promise<{ records: AuditRecord[]; pages: number }> {
  const records: AuditRecord[] = [];
  let pageToken: string | undefined;
  let pages = 0;
  for (;;) {
    const page = await store.list({ ...query, ...(pageToken ? { pageToken } : {}) });
    pages++;
    expect(page.records.length).toBeLessThanOrEqual(query.pageSize);
    records.push(...page.records);
    if (!page.nextPageToken) return { records, pages };
    expect(page.records.length).toBe(query.pageSize);
    pageToken = page.nextPageToken;
    if (pages > 1000) throw new Error("paging does not end");
  }
}

function newestFirst(records: AuditRecord[]): AuditRecord[] {
  return [...records].sort((a, b) => b.time.getTime() - a.time.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

const ids = (records: AuditRecord[]) => records.map((r) => r.id);

/** queuedOperation builds a queued operation and its intent record. */
export function queuedOperation(over: Partial<OperationRecord> = {}): { op: OperationRecord; intent: AuditRecord } {
  const id = newOperationId();
  const now = new Date();
  const op: OperationRecord = {
    id,
    kind: "install",
    method: "paas.v1.ReleaseService/InstallRelease",
    namespace: "paas-ws-a",
    release: "web",
    caller: "key-1",
    idempotencyKey: "",
    state: "queued",
    createdAt: now,
    steps: [],
    request: "{}",
    params: { chart: "podinfo" },
    response: "",
    responseType: "paas.v1.InstallReleaseResponse",
    replica: "r1",
    cancelRequested: false,
    updatedAt: now,
    ...over,
  };
  return { op, intent: record({ operationId: id, stage: "intent" }) };
}

let deliverySeq = 0;
function delivery(operationId: string, over: Partial<NewDelivery> = {}): NewDelivery {
  deliverySeq++;
  return {
    id: `msg_contract_${Date.now()}_${deliverySeq}`,
    subscriptionId: "sub-a",
    eventType: "operation.succeeded",
    operationId,
    namespace: "paas-ws-a",
    payload: JSON.stringify({ type: "operation.succeeded", n: deliverySeq }),
    createdAt: new Date(Date.now() - 1000 + deliverySeq),
    ...over,
  };
}

/**
 * auditStoreContract is the behaviour every AuditStore implementation shares (SQLite in
 * test/unit/audit/sqlite-store.test.ts, PostgreSQL in test/integration/audit/postgres-store.test.ts).
 */
export function auditStoreContract(label: string, newDatabase: () => Promise<AuditTestDatabase>): void {
  describe(`AuditStore contract: ${label}`, () => {
    let db: AuditTestDatabase | undefined;
    let stores: AuditStore[] = [];

    /** open gives a store on this test's database (a fresh one for the first call). */
    const open = async (): Promise<AuditStore> => {
      db ??= await newDatabase();
      const store = await db.open();
      stores.push(store);
      return store;
    };

    afterEach(async () => {
      for (const s of stores) await s.close();
      stores = [];
      await db?.dispose();
      db = undefined;
    });

    it("append + list round-trips every field, outcome present only when set", async () => {
      const store = await open();
      const intent = record({ stage: "intent" });
      const outcome = record({
        stage: "outcome",
        outcome: "failed",
        operationId: intent.operationId,
        time: new Date(intent.time.getTime() + 1234),
        errorCode: "FAILED_PRECONDITION",
        errorMessage: "values are wrong: ünïcødé 'quoted' \"double\" \\ back",
        revisionBefore: 0,
        revisionAfter: 0,
        durationMs: 98_765_432_100,
      });
      expect(await store.append(intent)).toBe("written");
      expect(await store.append(outcome)).toBe("written");
      const page = await store.list({ operationId: intent.operationId, pageSize: 10 });
      expect(page.nextPageToken).toBe("");
      expect(page.records).toStrictEqual([outcome, intent]);
      expect(page.records[1]).not.toHaveProperty("outcome");
      expect(page.records[0]!.time).toBeInstanceOf(Date);
    });

    it("a second outcome of an operation is 'duplicate' and not written; so is a second intent or the same record", async () => {
      const store = await open();
      const intent = record();
      const first = record({ stage: "outcome", outcome: "succeeded", operationId: intent.operationId });
      const second = record({
        stage: "outcome",
        outcome: "recovered",
        operationId: intent.operationId,
        replica: "replica-2",
      });
      expect(await store.append(intent)).toBe("written");
      expect(await store.append(first)).toBe("written");
      expect(await store.append(second)).toBe("duplicate");
      expect(await store.append(first)).toBe("duplicate");
      expect(await store.append(record({ operationId: intent.operationId }))).toBe("duplicate");
      const page = await store.list({ operationId: intent.operationId, pageSize: 10 });
      expect(ids(page.records)).toEqual([first.id, intent.id]);
      expect(page.records[0]!.outcome).toBe("succeeded");
      // Another replica sees the same and cannot add an outcome either.
      const other = await open();
      expect(await other.append(record({ stage: "outcome", outcome: "failed", operationId: intent.operationId }))).toBe(
        "duplicate",
      );
      expect((await other.list({ operationId: intent.operationId, pageSize: 10 })).records).toHaveLength(2);
    });

    it("concurrent outcomes of one operation from two replicas: exactly one is written", async () => {
      const [a, b] = [await open(), await open()];
      const intent = record();
      await a.append(intent);
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          (i % 2 ? a : b).append(
            record({ stage: "outcome", outcome: i % 2 ? "succeeded" : "recovered", operationId: intent.operationId }),
          ),
        ),
      );
      expect(results.filter((r) => r === "written")).toHaveLength(1);
      expect((await a.list({ operationId: intent.operationId, pageSize: 20 })).records).toHaveLength(2);
      expect(await a.openIntents()).toEqual([]);
    });

    it("openIntents lists intents without an outcome, oldest first", async () => {
      const store = await open();
      const t = Date.UTC(2030, 5, 1);
      const a = record({ time: new Date(t + 3000) });
      const b = record({ time: new Date(t + 1000) });
      const c = record({ time: new Date(t + 2000) });
      for (const r of [a, b, c]) await store.append(r);
      await store.append(
        record({ stage: "outcome", outcome: "succeeded", operationId: c.operationId, time: new Date(t + 2500) }),
      );
      // An outcome without an intent (a denied call) opens nothing.
      await store.append(record({ stage: "outcome", outcome: "denied" }));
      expect(await store.openIntents()).toStrictEqual([b, a]);
      await store.append(record({ stage: "outcome", outcome: "recovered", operationId: b.operationId }));
      const other = await open();
      expect(ids(await other.openIntents())).toEqual([a.id]);
    });

    it("list filters by namespace, release, caller, operation and time range", async () => {
      const store = await open();
      const t0 = Date.UTC(2031, 0, 1);
      const rs = [
        record({ namespace: "paas-ws-a", release: "web", caller: "alice", time: new Date(t0) }),
        record({ namespace: "paas-ws-a", release: "db", caller: "bob", time: new Date(t0 + 1000) }),
        record({ namespace: "paas-ws-b", release: "web", caller: "alice", time: new Date(t0 + 2000) }),
        record({ namespace: "paas-ws-b", release: "db", caller: "bob", time: new Date(t0 + 3000) }),
        record({ namespace: "", release: "", caller: "", time: new Date(t0 + 4000) }),
      ];
      for (const r of rs) await store.append(r);
      const q = async (query: Omit<AuditQuery, "pageSize">) =>
        ids((await store.list({ ...query, pageSize: 100 })).records);
      const [r0, r1, r2, r3, r4] = rs.map((r) => r.id);
      expect(await q({})).toEqual([r4, r3, r2, r1, r0]);
      expect(await q({ namespace: "paas-ws-a" })).toEqual([r1, r0]);
      expect(await q({ release: "web" })).toEqual([r2, r0]);
      expect(await q({ caller: "bob" })).toEqual([r3, r1]);
      expect(await q({ namespace: "paas-ws-b", release: "db", caller: "bob" })).toEqual([r3]);
      expect(await q({ namespace: "paas-ws-b", caller: "alice", release: "db" })).toEqual([]);
      expect(await q({ operationId: rs[2]!.operationId })).toEqual([r2]);
      expect(await q({ since: new Date(t0 + 1000) })).toEqual([r4, r3, r2, r1]);
      expect(await q({ until: new Date(t0 + 1000) })).toEqual([r0]);
      expect(await q({ since: new Date(t0 + 1000), until: new Date(t0 + 3000) })).toEqual([r2, r1]);
      expect(await q({ namespace: "paas-ws-zzz" })).toEqual([]);
    });

    it("visibility: exact namespaces or prefixes (case-sensitive, % and _ literal), empty namespace hidden", async () => {
      const store = await open();
      const names = [
        "paas-ws-a",
        "paas-ws-ab",
        "paas-ws-b",
        "other",
        "",
        "paasXws-c",
        "100%-d",
        "100x-e",
        "PAAS-ws-a",
        "a\\b",
      ];
      const byNs = new Map<string, string>();
      for (const namespace of names) {
        const r = record({ namespace });
        byNs.set(namespace, r.id);
        await store.append(r);
      }
      const visible = async (exact: string[], prefixes: string[], extra: Partial<AuditQuery> = {}) =>
        (await store.list({ visibility: { exact, prefixes }, pageSize: 100, ...extra })).records
          .map((r) => r.namespace)
          .sort();
      expect(await visible(["other"], ["paas-ws-a"])).toEqual(["other", "paas-ws-a", "paas-ws-ab"]);
      expect(await visible([], ["paas_ws"])).toEqual([]);
      expect(await visible([], ["paas"])).toEqual(["paas-ws-a", "paas-ws-ab", "paas-ws-b", "paasXws-c"]);
      expect(await visible([], ["100%"])).toEqual(["100%-d"]);
      expect(await visible([], ["a\\"])).toEqual(["a\\b"]);
      expect(await visible(["paas-ws-b", "nope"], [])).toEqual(["paas-ws-b"]);
      expect(await visible([], [])).toEqual([]);
      // "" as exact or prefix still hides records without a namespace.
      expect(await visible([""], [""])).toEqual(names.filter((n) => n !== "").sort());
      expect(await visible(["other"], ["paas-ws-"], { namespace: "paas-ws-b" })).toEqual(["paas-ws-b"]);
      expect(await visible(["other"], [], { namespace: "paas-ws-b" })).toEqual([]);
      // Without visibility every record is listed, the one without namespace too.
      expect((await store.list({ pageSize: 100 })).records.map((r) => r.id).sort()).toEqual([...byNs.values()].sort());
    });

    it("pages newest first by (time, id) across equal timestamps, with filters, without gaps or repeats", async () => {
      const store = await open();
      const t0 = Date.UTC(2032, 0, 1);
      const all: AuditRecord[] = [];
      for (let i = 0; i < 37; i++) {
        // Groups of equal times, ids in random order relative to insertion.
        const r = record({
          time: new Date(t0 + Math.floor(i / 6) * 1000),
          namespace: i % 3 === 0 ? "paas-ws-x" : "paas-ws-y",
        });
        all.push(r);
      }
      for (const r of [...all].reverse()) await store.append(r);
      const expected = newestFirst(all);
      for (const pageSize of [1, 5, 6, 7, 37, 100]) {
        const { records, pages } = await listAll(store, { pageSize });
        expect(ids(records)).toEqual(ids(expected));
        expect(pages).toBe(Math.max(1, Math.ceil(37 / pageSize)));
      }
      const x = await listAll(store, { pageSize: 4, namespace: "paas-ws-x" });
      expect(ids(x.records)).toEqual(ids(expected.filter((r) => r.namespace === "paas-ws-x")));
      const vis = await listAll(store, {
        pageSize: 3,
        visibility: { exact: [], prefixes: ["paas-ws-y"] },
        since: new Date(t0 + 1000),
      });
      expect(ids(vis.records)).toEqual(
        ids(expected.filter((r) => r.namespace === "paas-ws-y" && r.time.getTime() >= t0 + 1000)),
      );
      // A token stays valid for records appended later: they are newer and do not shift the next page.
      const first = await store.list({ pageSize: 10 });
      await store.append(record({ time: new Date(t0 + 999_999) }));
      const second = await store.list({ pageSize: 10, pageToken: first.nextPageToken });
      expect(ids(second.records)).toEqual(ids(expected.slice(10, 20)));
    });

    it("rejects a malformed page token and a page size outside 1..1000 with invalid_argument", async () => {
      const store = await open();
      await store.append(record());
      const b64 = (s: string) => Buffer.from(s).toString("base64url");
      for (const pageToken of [
        "!!!",
        "not a token",
        b64("not json"),
        b64("[]"),
        b64('{"v":1,"t":"x","i":"a"}'),
        b64('{"v":1,"t":-1,"i":"a"}'),
        b64('{"v":1,"t":1,"i":""}'),
        b64('{"v":2,"t":1,"i":"a"}'),
        "A".repeat(2000),
      ]) {
        const err = await expectKind(store.list({ pageSize: 10, pageToken }), "invalid_argument");
        expect(err.message).toMatch(/page_token/);
      }
      for (const pageSize of [0, -1, 1001, 1.5, Number.NaN]) {
        await expectKind(store.list({ pageSize }), "invalid_argument");
      }
      expect((await store.list({ pageSize: 1000 })).records).toHaveLength(1);
    });

    it("idempotency: claimed, running, mismatch, done with the stored result", async () => {
      const store = await open();
      const op1 = newOperationId();
      const req = {
        caller: "alice",
        key: "k1",
        fingerprint: "f".repeat(64),
        operationId: op1,
        method: "paas.v1.ReleaseService/InstallRelease",
        ttlMs: 60_000,
      };
      expect(await store.claimIdempotency(req)).toEqual({ state: "claimed" });
      expect(await store.claimIdempotency({ ...req, operationId: newOperationId() })).toEqual({
        state: "running",
        operationId: op1,
      });
      expect(
        await store.claimIdempotency({ ...req, fingerprint: "e".repeat(64), operationId: newOperationId() }),
      ).toEqual({ state: "mismatch", operationId: op1 });
      // Keys are per caller.
      expect(await store.claimIdempotency({ ...req, caller: "bob", operationId: newOperationId() })).toEqual({
        state: "claimed",
      });
      // Only the claiming operation completes the key.
      const result: StoredResult = { ok: true, response: '{"release":{"name":"web","revision":3}}' };
      await store.completeIdempotency("alice", "k1", newOperationId(), { ok: true, response: "{}" });
      expect((await store.claimIdempotency({ ...req, operationId: newOperationId() })).state).toBe("running");
      await store.completeIdempotency("alice", "k1", op1, result);
      expect(await store.claimIdempotency({ ...req, operationId: newOperationId() })).toEqual({
        state: "done",
        operationId: op1,
        result,
      });
      expect(await store.claimIdempotency({ ...req, fingerprint: "e".repeat(64) })).toEqual({
        state: "mismatch",
        operationId: op1,
      });
      // A completed key is not completed again.
      await store.completeIdempotency("alice", "k1", op1, { ok: true, response: "{}" });
      expect(await store.claimIdempotency(req)).toEqual({ state: "done", operationId: op1, result });
      // Error results keep kind, message and reason.
      const op2 = newOperationId();
      const failure: StoredResult = {
        ok: false,
        kind: "failed_precondition",
        message: 'chart "x" not found',
        reason: "VALUES_TOO_LARGE",
      };
      await store.claimIdempotency({ ...req, key: "k2", operationId: op2 });
      await store.completeIdempotency("alice", "k2", op2, failure);
      const other = await open();
      expect(await other.claimIdempotency({ ...req, key: "k2" })).toEqual({
        state: "done",
        operationId: op2,
        result: failure,
      });
    });

    it("idempotency: abandon frees a running key for a retry, only by its operation", async () => {
      const store = await open();
      const op1 = newOperationId();
      const req = {
        caller: "alice",
        key: "k",
        fingerprint: "1".repeat(64),
        operationId: op1,
        method: "m",
        ttlMs: 60_000,
      };
      expect((await store.claimIdempotency(req)).state).toBe("claimed");
      await store.abandonIdempotency("alice", "k", newOperationId());
      expect(await store.claimIdempotency({ ...req, operationId: newOperationId() })).toEqual({
        state: "running",
        operationId: op1,
      });
      await store.abandonIdempotency("alice", "k", op1);
      const op2 = newOperationId();
      expect(await store.claimIdempotency({ ...req, fingerprint: "2".repeat(64), operationId: op2 })).toEqual({
        state: "claimed",
      });
      expect(await store.claimIdempotency({ ...req, operationId: newOperationId() })).toEqual({
        state: "mismatch",
        operationId: op2,
      });
      // A finished key is not abandoned.
      await store.completeIdempotency("alice", "k", op2, { ok: true, response: "{}" });
      await store.abandonIdempotency("alice", "k", op2);
      expect((await store.claimIdempotency({ ...req, fingerprint: "2".repeat(64) })).state).toBe("done");
    });

    it("idempotency: an expired key is claimed anew, and purgeExpired deletes expired keys only", async () => {
      const store = await open();
      const base = { caller: "alice", fingerprint: "1".repeat(64), method: "m" };
      const op1 = newOperationId();
      await store.claimIdempotency({ ...base, key: "short", operationId: op1, ttlMs: 150 });
      await store.completeIdempotency("alice", "short", op1, { ok: true, response: "{}" });
      await store.claimIdempotency({ ...base, key: "short2", operationId: newOperationId(), ttlMs: 150 });
      await store.claimIdempotency({ ...base, key: "short3", operationId: newOperationId(), ttlMs: 150 });
      const longOp = newOperationId();
      await store.claimIdempotency({ ...base, key: "long", operationId: longOp, ttlMs: 600_000 });
      expect(
        (await store.claimIdempotency({ ...base, key: "short", operationId: newOperationId(), ttlMs: 150 })).state,
      ).toBe("done");
      await sleep(400);
      // Expired (done or running): a new claim takes it over, whatever the fingerprint.
      const op2 = newOperationId();
      expect(
        await store.claimIdempotency({
          ...base,
          key: "short",
          fingerprint: "9".repeat(64),
          operationId: op2,
          ttlMs: 60_000,
        }),
      ).toEqual({ state: "claimed" });
      expect(
        await store.claimIdempotency({ ...base, key: "short", operationId: newOperationId(), ttlMs: 60_000 }),
      ).toEqual({ state: "mismatch", operationId: op2 });
      // The first owner's late completion does not touch the new claim.
      await store.completeIdempotency("alice", "short", op1, { ok: true, response: "late" });
      expect(
        (
          await store.claimIdempotency({
            ...base,
            key: "short",
            fingerprint: "9".repeat(64),
            operationId: newOperationId(),
            ttlMs: 60_000,
          })
        ).state,
      ).toBe("running");
      expect(await store.purgeExpired()).toBe(2);
      expect(await store.purgeExpired()).toBe(0);
      expect(
        await store.claimIdempotency({ ...base, key: "long", operationId: newOperationId(), ttlMs: 600_000 }),
      ).toEqual({ state: "running", operationId: longOp });
      expect(
        (await store.claimIdempotency({ ...base, key: "short2", operationId: newOperationId(), ttlMs: 600_000 })).state,
      ).toBe("claimed");
    });

    it("concurrent claims of one key from two replicas: exactly one is claimed", async () => {
      const [a, b] = [await open(), await open()];
      for (const key of ["c1", "c2", "c3"]) {
        const opIds = Array.from({ length: 12 }, () => newOperationId());
        const results = await Promise.all(
          opIds.map((operationId, i) =>
            (i % 2 ? a : b).claimIdempotency({
              caller: "alice",
              key,
              fingerprint: "f".repeat(64),
              operationId,
              method: "m",
              ttlMs: 60_000,
            }),
          ),
        );
        const winners = results.flatMap((r, i) => (r.state === "claimed" ? [opIds[i]] : []));
        expect(winners).toHaveLength(1);
        for (const r of results) {
          if (r.state !== "claimed") expect(r).toEqual({ state: "running", operationId: winners[0] });
        }
      }
    });

    it("heartbeat and liveReplicas by the store's clock, seen by every replica", async () => {
      const [a, b] = [await open(), await open()];
      expect(await a.liveReplicas(60_000)).toEqual(new Set());
      await a.heartbeat("r1");
      await sleep(500);
      await b.heartbeat("r2");
      expect(await a.liveReplicas(300)).toEqual(new Set(["r2"]));
      expect(await b.liveReplicas(60_000)).toEqual(new Set(["r1", "r2"]));
      await b.heartbeat("r1");
      expect(await a.liveReplicas(300)).toEqual(new Set(["r1", "r2"]));
    });

    it("is durable across close and reopen; a closed store rejects with unavailable", async () => {
      const store = await open();
      const intent = record();
      await store.append(intent);
      const op = newOperationId();
      await store.claimIdempotency({
        caller: "c",
        key: "k",
        fingerprint: "f",
        operationId: op,
        method: "m",
        ttlMs: 60_000,
      });
      await store.completeIdempotency("c", "k", op, { ok: true, response: "{}" });
      await store.heartbeat("r1");
      await store.close();
      await store.close(); // idempotent
      const err = await expectKind(store.list({ pageSize: 1 }), "unavailable");
      expect(err.message).toMatch(/^audit store unavailable: /);
      await expectKind(store.append(record()), "unavailable");

      const again = await open();
      expect((await again.list({ pageSize: 10 })).records).toStrictEqual([intent]);
      expect(ids(await again.openIntents())).toEqual([intent.id]);
      expect(
        await again.claimIdempotency({
          caller: "c",
          key: "k",
          fingerprint: "f",
          operationId: newOperationId(),
          method: "m",
          ttlMs: 60_000,
        }),
      ).toEqual({
        state: "done",
        operationId: op,
        result: { ok: true, response: "{}" },
      });
      expect(await again.liveReplicas(60_000)).toEqual(new Set(["r1"]));
      // migrate is idempotent on a database that has the schema.
      await again.migrate();
      expect((await again.list({ pageSize: 10 })).records).toHaveLength(1);
    });

    it("outbox: finishOperation writes the planner's deliveries in its transaction, and none when the operation had ended", async () => {
      const store = await open();
      const seen: OperationRecord[] = [];
      store.setOutboxPlanner((op) => {
        seen.push(op);
        return [delivery(op.id, { namespace: op.namespace })];
      });
      const { op, intent } = queuedOperation();
      await store.createOperation(op, intent);
      const end = { state: "succeeded" as const, finishedAt: new Date(), steps: [] };
      const outcome = record({ operationId: op.id, stage: "outcome", outcome: "succeeded" });
      expect(await store.finishOperation(op.id, end, outcome)).toBe(true);
      // The planner saw the operation as written: ended, request emptied.
      expect(seen).toHaveLength(1);
      expect(seen[0]).toMatchObject({ id: op.id, state: "succeeded", request: "" });
      const page = await store.listDeliveries({ operationId: op.id, pageSize: 10 });
      expect(page.deliveries).toHaveLength(1);
      expect(page.deliveries[0]).toMatchObject({
        state: "pending",
        attempts: 0,
        scheduleFrom: 0,
        subscriptionId: "sub-a",
      });
      // A second end writes nothing (no second delivery).
      expect(await store.finishOperation(op.id, end, undefined)).toBe(false);
      expect((await store.listDeliveries({ operationId: op.id, pageSize: 10 })).deliveries).toHaveLength(1);
      expect(seen).toHaveLength(1);
    });

    it("outbox: a planner that throws rolls the operation's end back", async () => {
      const store = await open();
      store.setOutboxPlanner(() => {
        throw new Error("planner broke");
      });
      const { op, intent } = queuedOperation();
      await store.createOperation(op, intent);
      const end = { state: "failed" as const, finishedAt: new Date(), steps: [] };
      await expect(
        store.finishOperation(op.id, end, record({ operationId: op.id, stage: "outcome", outcome: "failed" })),
      ).rejects.toThrow();
      expect((await store.getOperation(op.id))!.state).toBe("queued");
      expect((await store.openIntents()).map((r) => r.operationId)).toContain(op.id);
      store.setOutboxPlanner(undefined);
      expect(await store.finishOperation(op.id, end, undefined)).toBe(true);
      expect((await store.listDeliveries({ operationId: op.id, pageSize: 10 })).deliveries).toHaveLength(0);
    });

    it("outbox: two replicas claiming at once take different deliveries; an attempt is recorded only by the claim holder", async () => {
      const a = await open();
      const b = await open();
      const rows = Array.from({ length: 20 }, () => delivery("op-claims"));
      await a.enqueueDeliveries(rows);
      const [ca, cb] = await Promise.all([a.claimDeliveries("ra", 60_000, 15), b.claimDeliveries("rb", 60_000, 15)]);
      const all = [...ca, ...cb].map((d) => d.id);
      expect(new Set(all).size).toBe(all.length);
      expect(all.sort()).toEqual(rows.map((r) => r.id).sort());
      // Claimed rows are not claimed again while the claim lasts.
      expect(await a.claimDeliveries("ra", 60_000, 50)).toEqual([]);
      const d = ca[0] ?? cb[0]!;
      const holder = ca[0] ? "ra" : "rb";
      const other = holder === "ra" ? "rb" : "ra";
      const attempt = {
        deliveryId: d.id,
        attempt: 1,
        at: new Date(),
        statusCode: 500,
        durationMs: 12,
        errorClass: "http_500",
      };
      expect(
        await a.recordAttempt({ ...attempt, replica: other }, { state: "pending", nextAttemptAt: new Date() }),
      ).toBe(false);
      expect(
        await a.recordAttempt(
          { ...attempt, replica: holder },
          { state: "pending", nextAttemptAt: new Date(Date.now() - 1) },
        ),
      ).toBe(true);
      // The same attempt number twice is refused.
      expect(await a.recordAttempt({ ...attempt, replica: holder }, { state: "delivered" })).toBe(false);
      const after = (await a.getDelivery(d.id))!;
      expect(after).toMatchObject({ state: "pending", attempts: 1, lastStatus: 500, lastError: "http_500" });
      expect(await a.listAttempts(d.id)).toEqual([{ ...attempt, replica: holder, at: attempt.at }]);
      // Due again and unclaimed: claimable by anyone.
      const again = await b.claimDeliveries("rb", 60_000, 50);
      expect(again.map((x) => x.id)).toEqual([d.id]);
      expect(
        await b.recordAttempt(
          { ...attempt, attempt: 2, replica: "rb", statusCode: 204, errorClass: "" },
          { state: "delivered" },
        ),
      ).toBe(true);
      expect((await a.getDelivery(d.id))!).toMatchObject({ state: "delivered", attempts: 2 });
    });

    it("outbox: an expired claim is taken over; a released claim is due at its new time", async () => {
      const store = await open();
      const [d1, d2] = [delivery("op-exp"), delivery("op-exp")];
      await store.enqueueDeliveries([d1!, d2!]);
      expect((await store.claimDeliveries("dead-replica", 30, 10)).map((d) => d.id).sort()).toEqual(
        [d1!.id, d2!.id].sort(),
      );
      await sleep(60);
      const taken = await store.claimDeliveries("live", 60_000, 10);
      expect(taken.map((d) => d.id).sort()).toEqual([d1!.id, d2!.id].sort());
      // The dead replica's late attempt is not recorded.
      expect(
        await store.recordAttempt(
          {
            deliveryId: d1!.id,
            attempt: 1,
            at: new Date(),
            statusCode: 200,
            durationMs: 1,
            errorClass: "",
            replica: "dead-replica",
          },
          { state: "delivered" },
        ),
      ).toBe(false);
      await store.releaseClaim(d2!.id, "live", new Date(Date.now() + 3_600_000));
      await store.releaseClaim(d1!.id, "live", new Date(Date.now() - 1));
      expect((await store.claimDeliveries("live", 60_000, 10)).map((d) => d.id)).toEqual([d1!.id]);
    });

    it("outbox: dead and delivered ones can be redelivered (a new schedule), pending ones not; disabling an endpoint disables its pending deliveries", async () => {
      const store = await open();
      const d = delivery("op-redeliver");
      const keep = delivery("op-redeliver", { subscriptionId: "sub-b" });
      const off = delivery("op-redeliver", { subscriptionId: "sub-off" });
      await store.enqueueDeliveries([d, keep, off]);
      expect(await store.redeliver(d.id)).toBe(false);
      expect(await store.redeliver("msg_missing")).toBeUndefined();
      const claimed = await store.claimDeliveries("r", 60_000, 10);
      expect(claimed).toHaveLength(3);
      expect(
        await store.recordAttempt(
          {
            deliveryId: d.id,
            attempt: 1,
            at: new Date(),
            statusCode: 500,
            durationMs: 3,
            errorClass: "http_500",
            replica: "r",
          },
          { state: "dead" },
        ),
      ).toBe(true);
      const again = await store.redeliver(d.id);
      expect(again).toMatchObject({ id: d.id, state: "pending", attempts: 1, scheduleFrom: 1 });
      await store.releaseClaim(off.id, "r", new Date());
      await store.disableEndpoint("sub-off", "http://x.example/hook", new Date());
      expect(await store.disabledEndpoints()).toEqual(new Set(["sub-off http://x.example/hook"]));
      expect((await store.getDelivery(off.id))!.state).toBe("disabled");
      expect(await store.redeliver(off.id)).toBe(false);
      expect((await store.getDelivery(keep.id))!.state).toBe("pending");
      expect((await store.listDeliveries({ state: "disabled", pageSize: 10 })).deliveries.map((x) => x.id)).toEqual([
        off.id,
      ]);
    });

    it("outbox: purgeOperations removes settled deliveries and their attempts, never pending ones", async () => {
      const store = await open();
      const [done, waiting] = [delivery("op-purge"), delivery("op-purge")];
      await store.enqueueDeliveries([done!, waiting!]);
      await store.claimDeliveries("r", 60_000, 10);
      const attempt = {
        deliveryId: done!.id,
        attempt: 1,
        at: new Date(),
        statusCode: 204,
        durationMs: 2,
        errorClass: "",
        replica: "r",
      };
      expect(await store.recordAttempt(attempt, { state: "delivered" })).toBe(true);
      await store.purgeOperations(new Date(Date.now() + 60_000));
      expect(await store.getDelivery(done!.id)).toBeUndefined();
      expect(await store.listAttempts(done!.id)).toEqual([]);
      expect((await store.getDelivery(waiting!.id))!.state).toBe("pending");
    });

    it("outbox: lists newest first, filtered and paged", async () => {
      const store = await open();
      const rows = Array.from({ length: 7 }, (_, i) => delivery(i % 2 ? "op-odd" : "op-even"));
      await store.enqueueDeliveries(rows);
      const seen: string[] = [];
      let pageToken: string | undefined;
      for (let i = 0; i < 10; i++) {
        const page = await store.listDeliveries({ pageSize: 3, ...(pageToken ? { pageToken } : {}) });
        seen.push(...page.deliveries.map((x) => x.id));
        if (!page.nextPageToken) break;
        pageToken = page.nextPageToken;
      }
      expect(seen).toEqual(rows.map((r) => r.id).reverse());
      expect((await store.listDeliveries({ operationId: "op-odd", pageSize: 10 })).deliveries).toHaveLength(3);
      await expectKind(store.listDeliveries({ pageSize: 0 }), "invalid_argument");
      await expectKind(store.listDeliveries({ pageSize: 10, state: "lost" as "dead" }), "invalid_argument");
      await expectKind(store.listDeliveries({ pageSize: 10, pageToken: "!!" }), "invalid_argument");
      // The payload is kept exactly.
      expect((await store.getDelivery(rows[0]!.id))!.payload).toBe(rows[0]!.payload);
    });

    it("rejects records it cannot store faithfully with invalid_argument", async () => {
      const store = await open();
      await expectKind(store.append(record({ time: new Date(Number.NaN) })), "invalid_argument");
      await expectKind(store.append(record({ stage: "bogus" as "intent" })), "invalid_argument");
      await expectKind(store.append(record({ outcome: "maybe" as "failed" })), "invalid_argument");
      await expectKind(store.append(record({ durationMs: Number.POSITIVE_INFINITY })), "invalid_argument");
      expect((await store.list({ pageSize: 10 })).records).toEqual([]);
      // A fractional duration is rounded, not refused.
      const r = record({ durationMs: 12.6 });
      expect(await store.append(r)).toBe("written");
      expect((await store.list({ pageSize: 1 })).records[0]!.durationMs).toBe(13);
    });

    it("operations: created with their intent in one transaction, round-trip every field", async () => {
      const store = await open();
      const op = operation({
        progress: {
          podsReady: 1,
          podsDesired: 2,
          workloads: [{ kind: "Deployment", name: "web", ready: 1, desired: 2 }],
        },
      });
      const intent = record({ operationId: op.id, namespace: op.namespace, release: op.release });
      await store.createOperation(op, intent);
      expect(await store.getOperation(op.id)).toEqual(op);
      expect((await store.openIntents()).map((r) => r.operationId)).toEqual([op.id]);
      expect(await store.getOperation(newOperationId())).toBeUndefined();
      // A second operation with the same id is refused, and its intent is not written either.
      await expect(store.createOperation(op, record({ operationId: op.id }))).rejects.toBeInstanceOf(PaasError);
      expect((await store.list({ pageSize: 10, operationId: op.id })).records).toHaveLength(1);
    });

    it("operations: start is a compare-and-set from queued by the owner; finish writes the end and the outcome once", async () => {
      const store = await open();
      const other = await open();
      const op = operation();
      await store.createOperation(op, record({ operationId: op.id }));
      expect(await other.startOperation(op.id, "another-replica", new Date())).toBe(false);
      const results = await Promise.all([
        store.startOperation(op.id, op.replica, new Date()),
        other.startOperation(op.id, op.replica, new Date()),
      ]);
      expect(results.filter(Boolean)).toHaveLength(1);
      expect((await store.getOperation(op.id))!.state).toBe("running");
      const steps = [
        {
          name: "apply",
          order: 1,
          state: "succeeded" as const,
          detail: "done",
          startedAt: new Date(Date.UTC(2030, 0, 1)),
          finishedAt: new Date(Date.UTC(2030, 0, 1, 0, 0, 1)),
        },
      ];
      await store.saveProgress(op.id, steps, { podsReady: 2, podsDesired: 2, workloads: [] });
      expect((await other.getOperation(op.id))!.progress).toEqual({ podsReady: 2, podsDesired: 2, workloads: [] });
      const end = {
        state: "succeeded" as const,
        finishedAt: new Date(Date.UTC(2030, 0, 1, 0, 0, 2)),
        steps,
        response: '{"message":"ok"}',
      };
      const outcome = record({ operationId: op.id, stage: "outcome", outcome: "succeeded" });
      const ends = await Promise.all([
        store.finishOperation(op.id, end, outcome),
        other.finishOperation(op.id, { ...end, state: "failed" }, { ...outcome, id: newAuditId() }),
      ]);
      expect(ends.filter(Boolean)).toHaveLength(1);
      const done = (await store.getOperation(op.id))!;
      expect(["succeeded", "failed"]).toContain(done.state);
      expect(done.request).toBe("");
      expect(done.finishedAt).toEqual(end.finishedAt);
      expect(
        (await store.list({ pageSize: 10, operationId: op.id })).records.filter((r) => r.stage === "outcome"),
      ).toHaveLength(1);
      expect(await store.openIntents()).toEqual([]);
      // An ended operation neither starts nor saves progress.
      expect(await store.startOperation(op.id, op.replica, new Date())).toBe(false);
      await store.saveProgress(op.id, [], undefined);
      expect((await store.getOperation(op.id))!.steps).toEqual(steps);
    });

    it("operations: a cancel of a queued one (finish from queued only) loses to a start, and the other way round", async () => {
      const store = await open();
      const a = operation();
      await store.createOperation(a, record({ operationId: a.id }));
      const cancelled = {
        state: "cancelled" as const,
        finishedAt: new Date(),
        steps: [],
        error: { code: "CANCELLED", message: "by x", reason: "OPERATION_CANCELLED" },
      };
      expect(await store.finishOperation(a.id, cancelled, undefined, ["queued"])).toBe(true);
      expect(await store.startOperation(a.id, a.replica, new Date())).toBe(false);
      expect((await store.getOperation(a.id))!.error).toEqual(cancelled.error);
      const b = operation();
      await store.createOperation(b, record({ operationId: b.id }));
      expect(await store.startOperation(b.id, b.replica, new Date())).toBe(true);
      expect(await store.finishOperation(b.id, cancelled, undefined, ["queued"])).toBe(false);
      await store.requestCancel(b.id);
      expect(await store.cancelRequested([a.id, b.id, newOperationId()])).toEqual([b.id]);
    });

    it("operations: queued ones of dead replicas are adopted by one live replica only; running ones are not", async () => {
      const one = await open();
      const two = await open();
      await one.heartbeat("live-1");
      await one.heartbeat("live-2");
      const dead = [operation({ replica: "dead" }), operation({ replica: "dead" }), operation({ replica: "dead" })];
      const alive = operation({ replica: "live-1" });
      const running = operation({ replica: "dead" });
      for (const op of [...dead, alive, running]) await one.createOperation(op, record({ operationId: op.id }));
      expect(await one.startOperation(running.id, "dead", new Date())).toBe(true);
      const [x, y] = await Promise.all([one.adoptQueued("live-1", 60_000, 10), two.adoptQueued("live-2", 60_000, 10)]);
      const adopted = [...x, ...y].map((o) => o.id).sort();
      expect(adopted).toEqual(dead.map((o) => o.id).sort());
      expect(new Set(adopted).size).toBe(3);
      for (const o of x) expect((await one.getOperation(o.id))!.replica).toBe("live-1");
      for (const o of y) expect((await one.getOperation(o.id))!.replica).toBe("live-2");
      expect(await one.adoptQueued("live-1", 60_000, 10)).toEqual([]);
      // A running one is not adopted: it ends FAILED once its release is repaired.
      expect((await one.getOperation(running.id))!).toMatchObject({ state: "running", replica: "dead" });
      expect((await one.getOperation(alive.id))!.replica).toBe("live-1");
    });

    it("operations: list newest first, filtered, visible, paged; purge removes ended ones only", async () => {
      const store = await open();
      const made = [];
      for (let i = 0; i < 5; i++) {
        const op = operation({
          createdAt: new Date(Date.UTC(2030, 0, 1, 0, 0, i)),
          namespace: i < 3 ? "paas-ws-a" : "paas-ws-b",
          kind: i % 2 ? "upgrade" : "install",
        });
        await store.createOperation(op, record({ operationId: op.id }));
        made.push(op);
      }
      const all = [];
      let pageToken = "";
      for (let page = 0; page < 10; page++) {
        const res = await store.listOperations({ pageSize: 2, ...(pageToken ? { pageToken } : {}) });
        all.push(...res.operations);
        if (!res.nextPageToken) break;
        pageToken = res.nextPageToken;
      }
      expect(all.map((o) => o.id)).toEqual([...made].reverse().map((o) => o.id));
      expect((await store.listOperations({ pageSize: 10, namespace: "paas-ws-b" })).operations).toHaveLength(2);
      expect((await store.listOperations({ pageSize: 10, kind: "upgrade" })).operations).toHaveLength(2);
      expect(
        (await store.listOperations({ pageSize: 10, since: new Date(Date.UTC(2030, 0, 1, 0, 0, 3)) })).operations,
      ).toHaveLength(2);
      expect(
        (await store.listOperations({ pageSize: 10, visibility: { exact: [], prefixes: ["paas-ws-a"] } })).operations,
      ).toHaveLength(3);
      expect(
        (await store.listOperations({ pageSize: 10, visibility: { exact: ["paas-ws-b"], prefixes: [] } })).operations,
      ).toHaveLength(2);
      expect(
        (await store.listOperations({ pageSize: 10, visibility: { exact: [], prefixes: [] } })).operations,
      ).toHaveLength(0);
      await expectKind(store.listOperations({ pageSize: 0 }), "invalid_argument");
      await expectKind(store.listOperations({ pageSize: 10, pageToken: "nope!" }), "invalid_argument");
      await store.finishOperation(
        made[0]!.id,
        { state: "succeeded", finishedAt: new Date(Date.UTC(2030, 0, 2)), steps: [] },
        undefined,
      );
      expect(await store.purgeOperations(new Date(Date.UTC(2030, 0, 3)))).toBe(1);
      expect(await store.getOperation(made[0]!.id)).toBeUndefined();
      expect((await store.listOperations({ pageSize: 10 })).operations).toHaveLength(4);
    });
  });
}

/** operation builds a queued operation with every field set. */
export function operation(over: Partial<OperationRecord> = {}): OperationRecord {
  seq++;
  const at = new Date(Date.UTC(2030, 0, 1, 12, 0, 0, seq));
  return {
    id: newOperationId(),
    kind: "upgrade",
    method: "paas.v1.ReleaseService/UpgradeRelease",
    namespace: "paas-ws-a",
    release: `rel-${seq}`,
    caller: `key-${seq}`,
    idempotencyKey: `idem-${seq}`,
    state: "queued",
    createdAt: at,
    steps: [
      { name: "wait-for-release", order: 1, state: "running", detail: `queued behind operation ${seq}`, startedAt: at },
    ],
    request: JSON.stringify({ namespace: "paas-ws-a", name: `rel-${seq}` }),
    params: { namespace: "paas-ws-a", wait: true, n: seq },
    response: "",
    responseType: "paas.v1.UpgradeReleaseResponse",
    replica: "replica-1",
    cancelRequested: false,
    updatedAt: at,
    ...over,
  };
}
