import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPaasClient, type PaasClient } from "../../clients/paas-client.ts";
import { OperationState } from "../../gen/paas/v1/operation_pb.js";
import { startPrivatePostgres, type PrivatePostgres } from "../support/postgres.ts";
import {
  allAuditEvents,
  auditClient,
  byOperation,
  deleteNamespace,
  helmRevisions,
  KWOK_READY_DELAY,
  waitFor,
} from "../support/reliability.ts";
import { startServer, type ServerProcess } from "../support/testbed.ts";

// "Accepted means it runs": a replica holding queued async operations is SIGKILLed (with its
// helm). The other replica, sharing the PostgreSQL store, adopts and runs the queued ones;
// the one that was running ends FAILED naming the step it died in, once its release has been
// repaired; nothing runs twice (helm history and the audit log).

const PREFIX = "paas-ws-opsrepl-";
const CHART = "testbed/podinfo";
const RELEASES = ["r0", "r1", "r2", "r3"];

describe("operations across replicas", () => {
  let pg: PrivatePostgres;
  let a: ServerProcess;
  let b: ServerProcess;
  let ca: PaasClient;
  let cb: PaasClient;
  let replicaB = "";
  const ns = `${PREFIX}${randomBytes(3).toString("hex")}`;

  beforeAll(async () => {
    pg = await startPrivatePostgres();
    const env = {
      AUDIT_DATABASE_URL: pg.url,
      API_KEY: `e2e-${randomBytes(16).toString("hex")}`,
      NAMESPACE_PREFIX: PREFIX,
      HEARTBEAT_INTERVAL: "1",
      LEASE_DURATION: "6",
      RECONCILE_INTERVAL: "2",
    };
    // A runs one helm at a time, so that its later operations stay queued.
    [a, b] = await Promise.all([startServer({ ...env, HELM_CONCURRENCY: "1" }), startServer(env)]);
    replicaB = String(b.logs.find((l) => l.msg === "listening")?.replica ?? "");
    ca = createPaasClient({ baseUrl: a.baseUrl, apiKey: a.apiKey, protocol: "grpc" });
    cb = createPaasClient({ baseUrl: b.baseUrl, apiKey: b.apiKey, protocol: "connect" });
    await cb.namespaces.createNamespace({ name: ns, podSecurity: "baseline" });
    for (const r of RELEASES)
      await cb.releases.installRelease({ namespace: ns, name: r, chart: CHART, version: "6.13.0" });
  });

  afterAll(async () => {
    await a?.stop().catch(() => undefined);
    await b?.stop().catch(() => undefined);
    await deleteNamespace(ns);
    await pg?.destroy();
  });

  it("the queued operations of a killed replica run on the other, once; the running one ends FAILED naming its step", async () => {
    const running = await ca.releases.upgradeRelease({
      namespace: ns,
      name: "r0",
      wait: true,
      values: { podAnnotations: { [KWOK_READY_DELAY]: "120s" } },
      async: true,
    });
    const queued = [];
    for (const r of RELEASES.slice(1))
      queued.push(await ca.releases.upgradeRelease({ namespace: ns, name: r, values: { marker: r }, async: true }));
    await waitFor(
      "r0's helm to wait for its pods",
      async () =>
        (await ca.operations.getOperation({ id: running.operationId })).operation?.steps.some(
          (s) => s.name === "wait-ready",
        )
          ? true
          : undefined,
      60_000,
    );
    for (const q of queued)
      expect((await cb.operations.getOperation({ id: q.operationId })).operation?.state).toBe(OperationState.QUEUED);

    await a.crash();

    // B adopts the queued ones once A's heartbeat is 3 intervals old, and runs them.
    for (const q of queued) {
      const done = await cb.operations.waitOperation({ id: q.operationId, timeout: { seconds: 120n, nanos: 0 } });
      expect(done.operation?.state, q.operationId).toBe(OperationState.SUCCEEDED);
      expect(done.operation?.replica).toBe(replicaB);
    }
    // The running one: its release is repaired (no longer pending), then it ends FAILED naming its step.
    const failed = await waitFor(
      "the killed operation to end",
      async () => {
        const op = (await cb.operations.getOperation({ id: running.operationId })).operation;
        return op?.state === OperationState.FAILED ? op : undefined;
      },
      120_000,
      500,
    );
    expect(failed.error?.message).toMatch(/died in step "(wait-ready|apply)"/);
    expect(failed.error?.reason).toBe("REPLICA_LOST");
    const r0 = await helmRevisions(ns, "r0");
    expect(r0.at(-1)?.status).toBe("failed");

    // Nothing ran twice: one revision per operation, one outcome per operation.
    const ops = byOperation(await allAuditEvents(auditClient(b.baseUrl, b.apiKey), ns));
    for (const id of [running.operationId, ...queued.map((q) => q.operationId)]) {
      expect(ops.get(id)?.intents, id).toHaveLength(1);
      expect(ops.get(id)?.outcomes, id).toHaveLength(1);
    }
    for (const [i, r] of RELEASES.entries()) {
      const id = i === 0 ? running.operationId : queued[i - 1]!.operationId;
      expect(
        (await helmRevisions(ns, r)).filter((rev) => rev.labels["paas-operation"] === id),
        r,
      ).toHaveLength(1);
    }
  });
});
