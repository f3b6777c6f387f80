import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPaasClient, type PaasClient } from "../../clients/paas-client.ts";
import { AuditOutcome, type AuditEvent } from "../../gen/paas/v1/audit_pb.js";
import { ReleaseStatus } from "../../gen/paas/v1/release_pb.js";
import { startPrivatePostgres, type PrivatePostgres } from "../support/postgres.ts";
import { allAuditEvents, auditClient, byOperation, deleteNamespace, helmRevisions } from "../support/reliability.ts";
import { startServer, uniqueNamespace, type ServerProcess } from "../support/testbed.ts";
import { failure } from "../support/failure.ts";

// The audit log is a precondition of every mutation: with its PostgreSQL gone, mutations are
// refused (UNAVAILABLE, quickly, helm not run) while reads go on; once PostgreSQL is back the
// pool reconnects by itself and mutations work again, each recorded exactly once.

const REFUSED_WITHIN_MS = 15_000;
const RECOVERS_WITHIN_MS = 20_000;

describe("audit store (PostgreSQL) down", () => {
  let pg: PrivatePostgres;
  let server: ServerProcess;
  let client: PaasClient;
  const ns = uniqueNamespace("auditdown");
  /** x-request-id of every upgrade sent, and how it ended. */
  const sent: Array<{ requestId: string; ok: boolean; code?: Code }> = [];

  const upgrade = async (requestId: string, n: string, idempotencyKey = "") => {
    try {
      const res = await client.releases.upgradeRelease(
        { namespace: ns, name: "web", values: { podAnnotations: { "test/n": n } }, idempotencyKey },
        { headers: { "x-request-id": requestId } },
      );
      sent.push({ requestId, ok: true });
      return res;
    } catch (err) {
      const e = ConnectError.from(err);
      sent.push({ requestId, ok: false, code: e.code });
      throw e;
    }
  };

  beforeAll(async () => {
    pg = await startPrivatePostgres();
    server = await startServer({ AUDIT_DATABASE_URL: pg.url });
    client = createPaasClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, protocol: "grpc" });
  });

  afterAll(async () => {
    await deleteNamespace(ns);
    const code = await server?.stop();
    await pg?.destroy();
    expect(code).toBe(0);
  });

  it("installs and upgrades while PostgreSQL is up", async () => {
    await client.namespaces.createNamespace({ name: ns, podSecurity: "baseline" });
    const res = await client.releases.installRelease({
      namespace: ns,
      name: "web",
      chart: "testbed/podinfo",
      version: "6.13.0",
    });
    expect(res.release?.revision).toBe(1);
    expect((await upgrade("up-1", "up-1")).release?.revision).toBe(2);
  });

  it("refuses mutations with UNAVAILABLE while PostgreSQL is stopped; reads still work; helm is not run", async () => {
    const helmStarts = () =>
      server.logs.filter((l) => typeof l.msg === "string" && l.msg.startsWith("helm ") && l.msg.endsWith(" started"))
        .length;
    const helmBefore = helmStarts();
    expect(helmBefore).toBeGreaterThan(0);
    await pg.stop();
    const t0 = Date.now();
    const refused = await failure(upgrade("down-1", "down-1"));
    const refusedMs = Date.now() - t0;
    console.log(
      `[audit-store-down] first upgrade after stopping PostgreSQL refused in ${refusedMs} ms: ${Code[refused.code]} ${refused.rawMessage}`,
    );
    expect(Code[refused.code], refused.rawMessage).toBe(Code[Code.Unavailable]);
    expect(refusedMs).toBeLessThan(REFUSED_WITHIN_MS);

    // Again, with an idempotency key (the key cannot be claimed either), and a second time in a row.
    const t1 = Date.now();
    const keyed = await failure(upgrade("down-2", "down-2", "down-key"));
    expect(Code[keyed.code], keyed.rawMessage).toBe(Code[Code.Unavailable]);
    const again = await failure(upgrade("down-3", "down-3"));
    expect(Code[again.code], again.rawMessage).toBe(Code[Code.Unavailable]);
    expect(Date.now() - t1).toBeLessThan(2 * REFUSED_WITHIN_MS);

    // Reads do not need the audit log.
    const got = await client.releases.getRelease({ namespace: ns, name: "web" });
    expect(got.release).toMatchObject({ revision: 2, status: ReleaseStatus.DEPLOYED });
    expect(got.release?.values).toMatchObject({ podAnnotations: { "test/n": "up-1" } });
    const list = await client.releases.listReleases({ namespace: ns });
    expect(list.releases.map((r) => r.name)).toEqual(["web"]);
    // Helm was not run: no revision 3, nothing pending.
    const stored = await helmRevisions(ns, "web");
    expect(stored.map((s) => [s.version, s.status])).toEqual([
      [1, "superseded"],
      [2, "deployed"],
    ]);
    expect(helmStarts()).toBe(helmBefore);
  });

  it("accepts mutations again once PostgreSQL is back, without a restart", async () => {
    await pg.start();
    const t0 = Date.now();
    let attempt = 0;
    let res;
    for (;;) {
      attempt++;
      try {
        res = await upgrade(`back-${attempt}`, `back-${attempt}`);
        break;
      } catch (err) {
        const e = ConnectError.from(err);
        expect(Code[e.code], e.rawMessage).toBe(Code[Code.Unavailable]);
        if (Date.now() - t0 > RECOVERS_WITHIN_MS)
          throw new Error(
            `mutations still refused ${RECOVERS_WITHIN_MS} ms after PostgreSQL came back: ${e.rawMessage}`,
            { cause: err },
          );
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    const recoveredMs = Date.now() - t0;
    console.log(
      `[audit-store-down] first upgrade accepted ${recoveredMs} ms after PostgreSQL was started again (attempt ${attempt})`,
    );
    expect(res.release?.revision).toBe(3);
    // The key refused while the store was down was never stored: it runs now.
    const keyed = await upgrade("back-key", "down-2", "down-key");
    expect(keyed.release?.revision).toBe(4);
    const stored = await helmRevisions(ns, "web");
    expect(stored.map((s) => s.version)).toEqual([1, 2, 3, 4]);
    expect(stored.at(-1)?.status).toBe("deployed");
  });

  it("leaves an audit log with one intent and one outcome per operation and nothing for refused calls", async () => {
    const events = await allAuditEvents(auditClient(server.baseUrl, server.apiKey), ns);
    const ops = byOperation(events);
    for (const op of ops.values()) {
      expect(op.intents.length, `operation ${op.operationId} intents`).toBe(1);
      expect(op.outcomes.length, `operation ${op.operationId} outcomes`).toBe(1);
    }
    // create namespace, install, and every accepted upgrade.
    const accepted = sent.filter((s) => s.ok);
    expect(ops.size).toBe(2 + accepted.length);
    const byRequest = new Map<string, AuditEventPair>();
    for (const op of ops.values())
      byRequest.set(op.intents[0]!.requestId, { intent: op.intents[0]!, outcome: op.outcomes[0]! });
    for (const s of sent) {
      const records = events.filter((e) => e.requestId === s.requestId);
      if (s.ok) {
        expect(records.map((e) => e.stage).sort(), s.requestId).toHaveLength(2);
        expect(byRequest.get(s.requestId)?.outcome.outcome, s.requestId).toBe(AuditOutcome.SUCCEEDED);
      } else {
        expect(records, `refused upgrade ${s.requestId} left audit records`).toEqual([]);
      }
    }
    expect(sent.filter((s) => !s.ok).length).toBeGreaterThanOrEqual(3);
    // The successful upgrades' outcomes name the revisions they made.
    expect(accepted.map((s) => byRequest.get(s.requestId)!.outcome.revisionAfter)).toEqual([2, 3, 4]);
    expect(byRequest.get("back-key")?.intent.idempotencyKey).toBe("down-key");
  });
});

interface AuditEventPair {
  intent: AuditEvent;
  outcome: AuditEvent;
}
