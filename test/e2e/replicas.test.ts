import { randomBytes } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPaasClient, type PaasClient } from "../../clients/paas-client.ts";
import { AuditOutcome } from "../../gen/paas/v1/audit_pb.js";
import { ReleaseStatus } from "../../gen/paas/v1/release_pb.js";
import { startPrivatePostgres, type PrivatePostgres } from "../support/postgres.ts";
import {
  allAuditEvents,
  auditClient,
  byOperation,
  deleteNamespace,
  helmRevisions,
  outcomeName,
  releaseLeases,
  waitFor,
} from "../support/reliability.ts";
import { startServer, uniqueNamespace, type ServerProcess } from "../support/testbed.ts";

// Two replicas sharing one PostgreSQL audit store and one LEASE_NAMESPACE: 20 concurrent
// upgrades of one release spread across both must be serialised by the Kubernetes Lease
// (helm never sees a concurrent operation) and each recorded exactly once.

const UPGRADES = 20;
const WAIT_BOUND_S = 600;
const HELM_BUSY = /another operation \(install\/upgrade\/rollback\) is in progress/i;

describe("two replicas, one release", () => {
  let pg: PrivatePostgres;
  let a: ServerProcess;
  let b: ServerProcess;
  let ca: PaasClient;
  let cb: PaasClient;
  const ns = uniqueNamespace("repl");

  beforeAll(async () => {
    pg = await startPrivatePostgres();
    const env = {
      AUDIT_DATABASE_URL: pg.url,
      API_KEY: `e2e-${randomBytes(16).toString("hex")}`,
      OPERATION_WAIT_TIMEOUT: String(WAIT_BOUND_S),
    };
    // Started together: both migrate the same empty database at once.
    [a, b] = await Promise.all([startServer(env), startServer(env)]);
    ca = createPaasClient({ baseUrl: a.baseUrl, apiKey: a.apiKey, protocol: "grpc" });
    cb = createPaasClient({ baseUrl: b.baseUrl, apiKey: b.apiKey, protocol: "connect", httpVersion: "1.1" });
  });

  afterAll(async () => {
    await deleteNamespace(ns);
    const codes = await Promise.all([a?.stop(), b?.stop()]);
    await pg?.destroy();
    expect(codes).toEqual([0, 0]);
  });

  it("serialises 20 concurrent upgrades across both replicas and records each once", async () => {
    await ca.namespaces.createNamespace({ name: ns, podSecurity: "baseline" });
    const installed = await cb.releases.installRelease({
      namespace: ns,
      name: "web",
      chart: "testbed/podinfo",
      version: "6.13.0",
    });
    expect(installed.release?.revision).toBe(1);

    // Sample the Leases while the upgrades run, so that "none left" below is not vacuous.
    const holders = new Set<string>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        for (const l of await releaseLeases(ns).catch(() => [])) holders.add(l.spec?.holderIdentity ?? "");
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const t0 = Date.now();
    const results = await Promise.all(
      Array.from({ length: UPGRADES }, async (_, i) => {
        const started = Date.now();
        try {
          const res = await (i % 2 === 0 ? ca : cb).releases.upgradeRelease({
            namespace: ns,
            name: "web",
            values: { podAnnotations: { "test/n": String(i) } },
          });
          return { i, ok: true as const, res, ms: Date.now() - started };
        } catch (err) {
          return { i, ok: false as const, err: ConnectError.from(err), ms: Date.now() - started };
        }
      }),
    );
    const wallMs = Date.now() - t0;
    sampling = false;
    await sampler;
    const ok = results.filter((r) => r.ok);
    const failed = results.filter((r) => !r.ok);
    console.log(
      `[replicas] ${UPGRADES} concurrent upgrades over 2 replicas: wall ${wallMs} ms, ${ok.length} succeeded, ${failed.length} failed; ` +
        `per-call latency min ${Math.min(...results.map((r) => r.ms))} ms, max ${Math.max(...results.map((r) => r.ms))} ms`,
    );

    // Every call succeeded or was ABORTED (never helm's own "another operation" refusal, never another code).
    for (const r of failed) {
      expect(r.err.rawMessage, `upgrade ${r.i}`).not.toMatch(HELM_BUSY);
      expect(Code[r.err.code], `upgrade ${r.i}: ${r.err.rawMessage}`).toBe(Code[Code.Aborted]);
      // ABORTED means "waited OPERATION_WAIT_TIMEOUT for the release": not possible before that bound.
      expect(r.ms, `upgrade ${r.i} ABORTED before the ${WAIT_BOUND_S}s wait bound`).toBeGreaterThanOrEqual(
        WAIT_BOUND_S * 1000,
      );
    }
    for (const s of [a, b]) expect(JSON.stringify(s.logs)).not.toMatch(HELM_BUSY);
    const successes = ok.length;
    const finalRevision = 1 + successes;

    // Each success got its own revision with its own values.
    const revisions = ok.map((r) => r.res!.release!.revision);
    expect(new Set(revisions).size).toBe(successes);
    for (const r of ok) expect(r.res!.release!.values).toMatchObject({ podAnnotations: { "test/n": String(r.i) } });
    expect(Math.max(...revisions)).toBe(finalRevision);

    // The cluster: GetRelease (through either replica) and Helm's storage Secrets.
    for (const c of [ca, cb]) {
      const got = await c.releases.getRelease({ namespace: ns, name: "web" });
      expect(got.release).toMatchObject({ revision: finalRevision, status: ReleaseStatus.DEPLOYED });
    }
    const stored = await helmRevisions(ns, "web");
    const versions = stored.map((s) => s.version);
    expect(versions.at(-1)).toBe(finalRevision);
    // Helm prunes old revisions (--history-max, default 10): the kept ones are the newest, consecutive.
    expect(versions).toEqual(Array.from({ length: stored.length }, (_, k) => finalRevision - stored.length + 1 + k));
    expect(stored.filter((s) => s.status === "deployed").map((s) => s.version)).toEqual([finalRevision]);
    expect(stored.filter((s) => s.status !== "deployed" && s.status !== "superseded")).toEqual([]);
    const storedOps = stored.map((s) => s.labels["paas-operation"]);
    expect(
      storedOps.every((o) => typeof o === "string" && o.length > 0),
      JSON.stringify(storedOps),
    ).toBe(true);
    expect(new Set(storedOps).size).toBe(stored.length);

    // The audit log (PostgreSQL, read through both replicas): one intent and one outcome per operation.
    const events = await allAuditEvents(auditClient(a.baseUrl, a.apiKey), ns);
    const viaB = await allAuditEvents(auditClient(b.baseUrl, b.apiKey), ns, 50);
    expect(viaB.map((e) => e.id).sort()).toEqual(events.map((e) => e.id).sort());
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    const ops = byOperation(events);
    for (const op of ops.values()) {
      expect(op.intents.length, `operation ${op.operationId} intents`).toBe(1);
      expect(op.outcomes.length, `operation ${op.operationId} outcomes`).toBe(1);
    }
    const releaseOps = [...ops.values()].filter((o) => o.intents[0]!.release === "web");
    const nsOps = [...ops.values()].filter((o) => o.intents[0]!.release === "");
    expect(nsOps.map((o) => o.intents[0]!.method)).toEqual(["paas.v1.NamespaceService/CreateNamespace"]);
    expect(releaseOps).toHaveLength(1 + UPGRADES);
    expect(releaseOps.filter((o) => o.intents[0]!.method === "paas.v1.ReleaseService/InstallRelease")).toHaveLength(1);
    expect(releaseOps.filter((o) => o.intents[0]!.method === "paas.v1.ReleaseService/UpgradeRelease")).toHaveLength(
      UPGRADES,
    );
    const succeeded = releaseOps.filter((o) => o.outcomes[0]!.outcome === AuditOutcome.SUCCEEDED);
    expect(succeeded.length, releaseOps.map((o) => outcomeName(o.outcomes[0]!.outcome)).join(",")).toBe(successes + 1);
    // Both replicas ran upgrades.
    expect(new Set(releaseOps.map((o) => o.intents[0]!.replica)).size).toBe(2);
    // The successful operations made revisions 1..final, one each …
    const byRevision = new Map(succeeded.map((o) => [o.outcomes[0]!.revisionAfter, o.operationId]));
    expect([...byRevision.keys()].sort((x, y) => x - y)).toEqual(
      Array.from({ length: finalRevision }, (_, k) => k + 1),
    );
    for (const o of succeeded) expect(o.outcomes[0]!.revisionAfter).toBe(o.outcomes[0]!.revisionBefore + 1);
    // … and Helm's stored revisions carry the operation that made them.
    for (const s of stored) expect(s.labels["paas-operation"], `revision ${s.version}`).toBe(byRevision.get(s.version));

    // Leases were seen while the upgrades ran, held by operations of both replicas; none is left.
    const replicas = [...new Set(releaseOps.map((o) => o.intents[0]!.replica))];
    expect(holders.size).toBeGreaterThan(1);
    for (const r of replicas)
      expect(
        [...holders].some((h) => h.startsWith(`${r}/`)),
        `a Lease held by ${r}`,
      ).toBe(true);
    await waitFor(
      "the release's Lease to be released",
      async () => ((await releaseLeases(ns)).length === 0 ? true : undefined),
      10_000,
    );
  });
});
