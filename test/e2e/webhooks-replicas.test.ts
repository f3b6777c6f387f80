import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPaasClient, type PaasClient } from "../../clients/paas-client.ts";
import { WebhookDeliveryState, WebhookService } from "../../gen/paas/v1/webhook_pb.js";
import { startPrivatePostgres, type PrivatePostgres } from "../support/postgres.ts";
import { deleteNamespace } from "../support/reliability.ts";
import { startServer, type ServerProcess } from "../support/testbed.ts";
import { WebhookReceiver } from "../support/webhook-receiver.ts";

// Two replicas on one PostgreSQL share the outbox: every event is delivered, each attempt is
// made by one replica only (row claims), retries included, and the receiver sees each
// webhook-id answered 2xx exactly once.

const PREFIX = "paas-ws-whrepl-";
const ns = `${PREFIX}${randomBytes(3).toString("hex")}`;
const secret = `whsec_${randomBytes(32).toString("base64")}`;

describe("webhooks across two replicas on PostgreSQL", () => {
  let pg: PrivatePostgres;
  let a: ServerProcess;
  let b: ServerProcess;
  let ca: PaasClient;
  let cb: PaasClient;
  const rx = new WebhookReceiver();

  beforeAll(async () => {
    await rx.listen();
    // The first answers fail: the retries are claimed by whichever replica polls first.
    rx.answers = Array.from({ length: 6 }, () => ({ status: 500 }));
    pg = await startPrivatePostgres();
    const dir = mkdtempSync(join(tmpdir(), "paas-webhooks-repl-"));
    const file = join(dir, "webhooks.json");
    writeFileSync(
      file,
      JSON.stringify([
        {
          id: "rx",
          url: rx.url,
          secrets: [secret],
          events: ["operation.succeeded", "operation.failed"],
          namespaces: [`${PREFIX}*`],
        },
      ]),
    );
    const env = {
      AUDIT_DATABASE_URL: pg.url,
      API_KEY: `e2e-${randomBytes(16).toString("hex")}`,
      NAMESPACE_PREFIX: PREFIX,
      HEARTBEAT_INTERVAL: "1",
      WEBHOOKS_FILE: file,
      WEBHOOKS_ALLOW_LOOPBACK: "true",
      WEBHOOK_RETRY_SCHEDULE: "0,500ms,500ms,500ms,500ms,500ms,500ms,500ms",
      WEBHOOK_POLL_INTERVAL: "100ms",
      WEBHOOK_TIMEOUT: "2s",
    };
    [a, b] = await Promise.all([startServer(env), startServer(env)]);
    ca = createPaasClient({ baseUrl: a.baseUrl, apiKey: a.apiKey, protocol: "grpc" });
    cb = createPaasClient({ baseUrl: b.baseUrl, apiKey: b.apiKey, protocol: "connect" });
  }, 60_000);

  afterAll(async () => {
    await a?.stop().catch(() => undefined);
    await b?.stop().catch(() => undefined);
    await rx.close();
    await deleteNamespace(ns).catch(() => undefined);
    await pg?.destroy();
  });

  it("delivers each event once (one 2xx per webhook-id), every attempt by one replica", async () => {
    await ca.namespaces.createNamespace({ name: ns, podSecurity: "baseline" });
    await cb.releases.installRelease({ namespace: ns, name: "web", chart: "testbed/podinfo", version: "6.13.0" });
    await ca.releases.upgradeRelease({ namespace: ns, name: "web", values: { replicaCount: 2 } });
    await cb.releases.uninstallRelease({ namespace: ns, name: "web" });
    const webhooks = createClient(WebhookService, ca.transport);
    const delivered = async () => {
      const ds = (await webhooks.listWebhookDeliveries({ subscriptionId: "rx", pageSize: 100 })).deliveries;
      return ds.length === 4 && ds.every((d) => d.state === WebhookDeliveryState.DELIVERED) ? ds : undefined;
    };
    let ds = await delivered();
    for (let i = 0; !ds && i < 150; i++) {
      await sleep(200);
      ds = await delivered();
    }
    expect(ds, "four delivered deliveries").toBeDefined();
    await sleep(1500);
    // Per webhook-id: the requests the receiver saw are exactly the recorded attempts, and one 2xx.
    const byId = new Map<string, number[]>();
    for (const r of rx.received) {
      const id = String(r.headers["webhook-id"]);
      byId.set(id, [...(byId.get(id) ?? []), r.status]);
      expect(() => new Webhook(secret).verify(r.body, r.headers as Record<string, string>)).not.toThrow();
    }
    expect([...byId.keys()].sort()).toEqual(ds!.map((d) => d.id).sort());
    const replicas = new Set<string>();
    for (const d of ds!) {
      const statuses = byId.get(d.id)!;
      expect(
        statuses.filter((s) => s >= 200 && s < 300),
        d.id,
      ).toHaveLength(1);
      expect(statuses.at(-1)).toBe(204);
      expect(d.attempts, d.id).toBe(statuses.length);
      expect(d.attemptLog.map((x) => x.statusCode)).toEqual(statuses);
      for (const x of d.attemptLog) replicas.add(x.replica);
    }
    expect(rx.received.length).toBe(4 + 6);
    // Which replicas made attempts is up to their polls; reported, not asserted.
    console.log(`webhook attempts made by ${replicas.size} replica(s)`);
  }, 180_000);
});
