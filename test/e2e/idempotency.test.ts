import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPaasClient, type PaasClient } from "../../clients/paas-client.ts";
import { AuditOutcome, AuditStage } from "../../gen/paas/v1/audit_pb.js";
import {
  allAuditEvents,
  auditClient,
  deleteNamespace,
  helmRevisions,
  KWOK_READY_DELAY,
  waitFor,
} from "../support/reliability.ts";
import { startServer, uniqueNamespace, type ServerProcess } from "../support/testbed.ts";
import { failure } from "../support/failure.ts";

// Idempotency keys end to end: a retry of a request whose client gave up gets the first
// execution's result (helm runs once), over REST (Idempotency-Key header) and gRPC (the
// idempotency_key field), and across a restart (keys live in the SQLite audit store).

const READY_DELAY = "8s";

describe("idempotency keys", () => {
  let first: ServerProcess;
  let second: ServerProcess | undefined;
  let grpc: PaasClient;
  const ns = uniqueNamespace("idem");
  const slowBody = { values: { podAnnotations: { [KWOK_READY_DELAY]: READY_DELAY, "test/key": "k1" } }, wait: true };
  let finished: Record<string, unknown> | undefined;

  const patch = (server: ServerProcess, body: unknown, key: string, signal?: AbortSignal) =>
    fetch(`${server.baseUrl}/api/releases/${ns}/web`, {
      method: "PATCH",
      headers: { "content-type": "application/json", "x-api-key": server.apiKey, "idempotency-key": key },
      body: JSON.stringify(body),
      signal,
    });
  const helmStarts = (server: ServerProcess, verb: string) =>
    server.logs.filter((l) => l.msg === `helm ${verb} started`).length;
  const keyIntents = async (server: ServerProcess, key: string) =>
    (await allAuditEvents(auditClient(server.baseUrl, server.apiKey), ns)).filter((e) => e.idempotencyKey === key);

  beforeAll(async () => {
    first = await startServer();
    grpc = createPaasClient({ baseUrl: first.baseUrl, apiKey: first.apiKey, protocol: "grpc" });
    await grpc.namespaces.createNamespace({ name: ns, podSecurity: "baseline" });
    const res = await grpc.releases.installRelease({
      namespace: ns,
      name: "web",
      chart: "testbed/podinfo",
      version: "6.13.0",
      wait: true,
    });
    expect(res.release?.revision).toBe(1);
  });

  afterAll(async () => {
    await deleteNamespace(ns);
    await first?.stop();
    await second?.stop();
  });

  it("REST: a client that gave up retries with the same Idempotency-Key and gets the one execution's result", async () => {
    const upgradesBefore = helmStarts(first, "upgrade");
    const t0 = Date.now();
    const giveUp = new AbortController();
    const call = patch(first, slowBody, "k1", giveUp.signal).then(
      (r) => ({ status: r.status }),
      (err: unknown) => ({ error: err as Error }),
    );
    // Give up ~1 s in, once helm is surely running (so the server has taken the operation on).
    await waitFor(
      "helm upgrade to start",
      async () => (helmStarts(first, "upgrade") > upgradesBefore ? true : undefined),
      20_000,
      50,
    );
    await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - t0))));
    giveUp.abort(new Error("client gave up"));
    const gaveUp = await call;
    expect("error" in gaveUp, JSON.stringify(gaveUp)).toBe(true);

    // The server goes on: revision 2 is being written (pending) while the first request runs.
    const pending = await waitFor(
      "revision 2 pending-upgrade",
      async () => {
        const revs = await helmRevisions(ns, "web");
        return revs.some((s) => s.version === 2) ? revs : undefined;
      },
      10_000,
    );
    expect(pending.map((s) => [s.version, s.status])).toEqual([
      [1, "deployed"],
      [2, "pending-upgrade"],
    ]);
    const inUse = await patch(first, slowBody, "k1");
    expect(inUse.status).toBe(409);
    expect(await inUse.json()).toMatchObject({ error_type: "idempotency_key_in_use" });

    // Retry until the first execution has finished: 409 meanwhile, then 200 with its result.
    let retry: Response | undefined;
    for (;;) {
      retry = await patch(first, slowBody, "k1");
      if (retry.status !== 409) break;
      expect(await retry.json()).toMatchObject({ error_type: "idempotency_key_in_use" });
      if (Date.now() - t0 > 60_000) throw new Error("the first upgrade did not finish within 60 s");
      await new Promise((r) => setTimeout(r, 500));
    }
    const doneMs = Date.now() - t0;
    console.log(`[idempotency] slow upgrade (ready delay ${READY_DELAY}) answered to a retry after ${doneMs} ms`);
    expect(retry.status).toBe(200);
    finished = (await retry.json()) as Record<string, unknown>;
    // It waited for the delayed pod: the result is the finished upgrade.
    expect(doneMs).toBeGreaterThanOrEqual(7_000);
    expect(finished).toMatchObject({
      name: "web",
      namespace: ns,
      revision: 2,
      status: "deployed",
      values: slowBody.values,
    });
    // The same body as the release the operation left (nothing ran since).
    const get = await fetch(`${first.baseUrl}/api/releases/${ns}/web`, { headers: { "x-api-key": first.apiKey } });
    expect(get.status).toBe(200);
    const current = (await get.json()) as Record<string, unknown>;
    expect(finished).toMatchObject({
      revision: current.revision,
      status: current.status,
      values: current.values,
      chart_version: current.chart_version,
      updated: current.updated,
    });
    // A further retry: byte-for-byte the same answer.
    const again = await patch(first, slowBody, "k1");
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual(finished);

    // Helm ran once: one new revision, made by the operation of the one intent with this key.
    expect(helmStarts(first, "upgrade")).toBe(upgradesBefore + 1);
    const stored = await helmRevisions(ns, "web");
    expect(stored.map((s) => [s.version, s.status])).toEqual([
      [1, "superseded"],
      [2, "deployed"],
    ]);
    const records = await keyIntents(first, "k1");
    const intents = records.filter((e) => e.stage === AuditStage.INTENT);
    const outcomes = records.filter((e) => e.stage === AuditStage.OUTCOME);
    expect(intents).toHaveLength(1);
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]).toMatchObject({
      operationId: intents[0]!.operationId,
      outcome: AuditOutcome.SUCCEEDED,
      revisionBefore: 1,
      revisionAfter: 2,
    });
    expect(stored[1]!.labels["paas-operation"]).toBe(intents[0]!.operationId);
  });

  it("REST: the same key with a different body is 422 idempotency_key_reused and runs nothing", async () => {
    const upgradesBefore = helmStarts(first, "upgrade");
    const other = await patch(first, { ...slowBody, values: { podAnnotations: { "test/key": "other" } } }, "k1");
    expect(other.status).toBe(422);
    expect(await other.json()).toMatchObject({ error_type: "idempotency_key_reused" });
    expect(helmStarts(first, "upgrade")).toBe(upgradesBefore);
    expect((await helmRevisions(ns, "web")).map((s) => s.version)).toEqual([1, 2]);
    expect((await keyIntents(first, "k1")).filter((e) => e.stage === AuditStage.INTENT)).toHaveLength(1);
  });

  it("REST: after a restart on the same audit file the retry still gets the stored result", async () => {
    expect(finished).toBeDefined();
    expect(await first.stop()).toBe(0);
    second = await startServer({ AUDIT_SQLITE_PATH: first.auditPath, API_KEY: first.apiKey });
    const retry = await patch(second, slowBody, "k1");
    expect(retry.status).toBe(200);
    expect(await retry.json()).toEqual(finished);
    expect(helmStarts(second, "upgrade")).toBe(0);
    expect((await helmRevisions(ns, "web")).map((s) => [s.version, s.status])).toEqual([
      [1, "superseded"],
      [2, "deployed"],
    ]);
    expect((await keyIntents(second, "k1")).filter((e) => e.stage === AuditStage.INTENT)).toHaveLength(1);
    // The different body is still refused after the restart.
    const other = await patch(second, { values: { podAnnotations: { "test/key": "other" } } }, "k1");
    expect(other.status).toBe(422);
  });

  it("gRPC: the idempotency_key field — the same key twice makes one revision", async () => {
    const server = second!;
    const client = createPaasClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, protocol: "grpc" });
    const req = { namespace: ns, name: "web", values: { podAnnotations: { "test/key": "g1" } }, idempotencyKey: "g1" };
    const one = await client.releases.upgradeRelease(req);
    const two = await client.releases.upgradeRelease(req);
    expect(one.release?.revision).toBe(3);
    expect(two).toEqual(one);
    // Same key, other request: FAILED_PRECONDITION; header and field disagreeing: INVALID_ARGUMENT.
    const reused = await failure(
      client.releases.upgradeRelease({ ...req, values: { podAnnotations: { "test/key": "g2" } } }),
    );
    expect(Code[reused.code], reused.rawMessage).toBe(Code[Code.FailedPrecondition]);
    const clash = await failure(
      client.releases.upgradeRelease({ ...req, idempotencyKey: "g3" }, { headers: { "idempotency-key": "g4" } }),
    );
    expect(Code[clash.code], clash.rawMessage).toBe(Code[Code.InvalidArgument]);

    expect(helmStarts(server, "upgrade")).toBe(1);
    const stored = await helmRevisions(ns, "web");
    expect(stored.map((s) => [s.version, s.status])).toEqual([
      [1, "superseded"],
      [2, "superseded"],
      [3, "deployed"],
    ]);
    const records = await keyIntents(server, "g1");
    const intents = records.filter((e) => e.stage === AuditStage.INTENT);
    expect(intents).toHaveLength(1);
    expect(records.filter((e) => e.stage === AuditStage.OUTCOME)).toMatchObject([
      { operationId: intents[0]!.operationId, outcome: AuditOutcome.SUCCEEDED, revisionAfter: 3 },
    ]);
    expect(stored[2]!.labels["paas-operation"]).toBe(intents[0]!.operationId);
    // Nothing ran for g3/g4.
    expect(await keyIntents(server, "g3")).toEqual([]);
    expect(await keyIntents(server, "g4")).toEqual([]);
  });
});
