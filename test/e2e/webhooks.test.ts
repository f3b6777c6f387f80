import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPaasClient, type PaasClient } from "../../clients/paas-client.ts";
import { WebhookDeliveryState, WebhookService, type WebhookDelivery } from "../../gen/paas/v1/webhook_pb.js";
import { deleteNamespace } from "../support/reliability.ts";
import { startServer, uniqueNamespace, type ServerProcess } from "../support/testbed.ts";
import { WebhookReceiver, type ReceivedWebhook } from "../support/webhook-receiver.ts";

// Webhooks on operation events against the real server on the testbed, doing a real
// namespace creation and a real helm install: receivers on 127.0.0.1 (one in this process
// verifying with the `standardwebhooks` package, one in Python verifying by hand from the
// spec), outages, 410, 429 + Retry-After, dead letters and RedeliverWebhook, a kill -9 of the
// server between two attempts.

const PREFIX = "paas-ws-wh-";
const ns = uniqueNamespace("wh");
const secret = () => `whsec_${randomBytes(32).toString("base64")}`;

const S = {
  node: secret(),
  pyA: secret(),
  pyB: secret(),
  other: secret(),
  gone: secret(),
  busy: secret(),
  dead: secret(),
  late: secret(),
  crash: secret(),
  steps: secret(),
};

const rx = {
  node: new WebhookReceiver(),
  other: new WebhookReceiver(),
  gone: new WebhookReceiver(),
  busy: new WebhookReceiver(),
  dead: new WebhookReceiver(),
  late: new WebhookReceiver(),
  crash: new WebhookReceiver(),
  steps: new WebhookReceiver(),
};

interface PyLine {
  id: string;
  timestamp: string;
  signatures: number;
  by_hand: boolean[];
  by_library: Array<boolean | null>;
  type: string;
  operation: string;
  namespace: string;
  bytes: number;
}
let python: ChildProcess | undefined;
const pyLines: PyLine[] = [];
let pyPort = 0;
let pyLibrary = false;

const servers: ServerProcess[] = [];
let server: ServerProcess;
let client: PaasClient;
let webhooks: Client<typeof WebhookService>;
const dir = mkdtempSync(join(tmpdir(), "paas-webhooks-"));
const file = join(dir, "webhooks.json");
const auditPath = join(dir, "audit.db");

const ENV = {
  NAMESPACE_PREFIX: PREFIX,
  WEBHOOKS_FILE: file,
  WEBHOOKS_ALLOW_LOOPBACK: "true",
  WEBHOOK_RETRY_SCHEDULE: "0,2s,2s,2s,2s,2s,2s,2s,2s,2s",
  WEBHOOK_POLL_INTERVAL: "200ms",
  WEBHOOK_TIMEOUT: "2s",
  AUDIT_SQLITE_PATH: auditPath,
  HEARTBEAT_INTERVAL: "1",
};

function subscriptions(): unknown {
  const sub = (id: string, url: string, secrets: string[], namespaces = [ns]) => ({
    id,
    url,
    secrets,
    events: ["operation.succeeded", "operation.failed", "operation.cancelled"],
    namespaces,
  });
  return {
    subscriptions: [
      sub("node", rx.node.url, [S.node]),
      sub("python", `http://127.0.0.1:${pyPort}/hook`, [S.pyA, S.pyB]),
      sub("other-tenant", rx.other.url, [S.other], ["paas-ws-wh-nomatch-*"]),
      sub("gone", rx.gone.url, [S.gone]),
      sub("busy", rx.busy.url, [S.busy]),
      sub("dead", rx.dead.url, [S.dead]),
      sub("late", rx.late.url, [S.late]),
      sub("crash", rx.crash.url, [S.crash]),
      { ...sub("steps", rx.steps.url, [S.steps]), events: ["operation.step"] },
    ],
  };
}

async function start(): Promise<void> {
  server = await startServer({ ...ENV });
  servers.push(server);
  client = createPaasClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, protocol: "grpc" });
  webhooks = createClient(WebhookService, client.transport);
}

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}

async function deliveries(subscriptionId: string): Promise<WebhookDelivery[]> {
  return (await webhooks.listWebhookDeliveries({ subscriptionId, pageSize: 1000 })).deliveries;
}

function verifyNode(r: ReceivedWebhook, key: string): unknown {
  return new Webhook(key).verify(r.body, r.headers as Record<string, string>);
}

beforeAll(async () => {
  for (const r of Object.values(rx)) await r.listen();
  // "late" is down at first: its port is taken, then closed.
  await rx.late.close();
  rx.busy.answers = [{ status: 429, headers: { "retry-after": "4" } }];
  rx.dead.answers = Array.from({ length: 100 }, () => ({ status: 500 }));
  rx.gone.answers = [{ status: 410 }];
  // WEBHOOK_PYTHON: a Python with the `standardwebhooks` package verifies with it too.
  const py = process.env.WEBHOOK_PYTHON ?? "python3";
  python = spawn(py, [join(import.meta.dirname, "../support/webhook_receiver.py"), S.pyA, S.pyB], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((resolve) => {
    createInterface({ input: python!.stdout! }).on("line", (line) => {
      const j = JSON.parse(line) as Record<string, unknown>;
      if (typeof j.port === "number") {
        pyPort = j.port;
        pyLibrary = j.library === true;
        resolve();
      } else pyLines.push(j as unknown as PyLine);
    });
  });
  writeFileSync(file, JSON.stringify(subscriptions()));
  await start();
}, 60_000);

afterAll(async () => {
  for (const s of servers) await s.stop().catch(() => undefined);
  for (const r of Object.values(rx)) await r.close();
  python?.kill("SIGTERM");
  await deleteNamespace(ns).catch(() => undefined);
});

describe("webhooks on operation events", () => {
  let namespaceOp = "";
  let installOp = "";

  it("signs every event so that standardwebhooks (Node) and a Python receiver verify it; one webhook-id per event", async () => {
    const created = await client.namespaces.createNamespace({ name: ns, podSecurity: "baseline" });
    expect(created.created).toBe(true);
    const installed = await client.releases.installRelease({
      namespace: ns,
      name: "web",
      chart: "testbed/podinfo",
      version: "6.13.0",
    });
    expect(installed.release?.revision).toBe(1);

    const events = await until(
      "two events at the Node receiver",
      () => (rx.node.received.length >= 2 ? rx.node.received : undefined),
      30_000,
    );
    await sleep(1500);
    expect(rx.node.received).toHaveLength(2);
    const bodies = events.map((r) => verifyNode(r, S.node) as { type: string; data: Record<string, unknown> });
    expect(bodies.map((b) => b.type)).toEqual(["operation.succeeded", "operation.succeeded"]);
    expect(bodies.map((b) => b.data.kind)).toEqual([expect.any(String), "install"]);
    namespaceOp = String(bodies[0]!.data.id);
    installOp = String(bodies[1]!.data.id);
    expect(bodies[1]!.data).toMatchObject({
      state: "succeeded",
      target: { namespace: ns, release: "web" },
      method: "paas.v1.ReleaseService/InstallRelease",
    });
    expect(bodies[1]!.data).not.toHaveProperty("request");
    expect(bodies[1]!.data).not.toHaveProperty("params");
    expect((bodies[1]!.data.steps as unknown[]).length).toBeGreaterThan(0);
    // One id per event, distinct, and the signature scheme of the spec.
    const ids = events.map((r) => r.headers["webhook-id"]);
    expect(new Set(ids).size).toBe(2);
    for (const r of events) {
      expect(r.headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
      expect(Math.abs(Number(r.headers["webhook-timestamp"]) - Date.now() / 1000)).toBeLessThan(60);
      expect(Buffer.byteLength(r.body)).toBeLessThan(20 * 1024);
    }
    // A wrong secret does not verify.
    expect(() => verifyNode(events[0]!, S.other)).toThrow(/No matching signature/);

    // Python: two secrets → two signatures; either verifies alone (by hand, and by the library when installed).
    await until("two events at the Python receiver", () => (pyLines.length >= 2 ? true : undefined), 15_000);
    expect(pyLines).toHaveLength(2);
    for (const l of pyLines) {
      expect(l.signatures).toBe(2);
      expect(l.by_hand).toEqual([true, true]);
      if (pyLibrary) expect(l.by_library).toEqual([true, true]);
      expect(l.namespace).toBe(ns);
    }
    expect(pyLines.map((l) => l.operation).sort()).toEqual([namespaceOp, installOp].sort());
    expect(new Set(pyLines.map((l) => l.id)).size).toBe(2);
  }, 120_000);

  it("delivers to a receiver that was down once it is up again, with the same webhook-id", async () => {
    const pending = await until(
      "two failed attempts of each",
      async () => {
        const ds = await deliveries("late");
        return ds.length === 2 && ds.every((d) => d.attempts >= 2) ? ds : undefined;
      },
      15_000,
    );
    expect(pending.every((d) => d.state === WebhookDeliveryState.PENDING)).toBe(true);
    expect(pending[0]!.attemptLog[0]!.errorClass).toBe("connection_refused");
    await rx.late.listen();
    await until("late delivered", () => (rx.late.received.length >= 2 ? true : undefined), 15_000);
    const ids = rx.late.received.map((r) => r.headers["webhook-id"]).sort();
    expect(ids).toEqual(pending.map((d) => d.id).sort());
    for (const r of rx.late.received) verifyNode(r, S.late);
  }, 30_000);

  it("sends operation.step events (opt-in) for each step that starts or ends, and no end events to that subscription", async () => {
    await until("step events", () => (rx.steps.received.length >= 4 ? true : undefined), 15_000);
    const bodies = rx.steps.received.map(
      (r) => verifyNode(r, S.steps) as { type: string; data: { id: string; step: { name: string; state: string } } },
    );
    expect(new Set(bodies.map((b) => b.type))).toEqual(new Set(["operation.step"]));
    const install = bodies.filter((b) => b.data.id === installOp);
    expect(install.length).toBeGreaterThanOrEqual(2);
    expect(install.some((b) => b.data.step.state === "running")).toBe(true);
    expect(install.some((b) => b.data.step.state === "succeeded")).toBe(true);
    expect(new Set(rx.steps.received.map((r) => r.headers["webhook-id"])).size).toBe(rx.steps.received.length);
  }, 30_000);

  it("answers the deliveries over REST too", async () => {
    const res = await fetch(`${server.baseUrl}/api/webhooks/deliveries?subscription_id=node`, {
      headers: { "x-api-key": server.apiKey },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { deliveries: Array<Record<string, unknown>> };
    expect(body.deliveries.map((d) => d.state)).toEqual([
      "WEBHOOK_DELIVERY_STATE_DELIVERED",
      "WEBHOOK_DELIVERY_STATE_DELIVERED",
    ]);
    expect(body.deliveries[0]).toHaveProperty("attempt_log");
    expect(JSON.stringify(body)).not.toContain("payload");
    const subs = await fetch(`${server.baseUrl}/api/webhooks/subscriptions`, {
      headers: { "x-api-key": server.apiKey },
    });
    expect(subs.status).toBe(200);
    expect(await subs.text()).not.toContain("whsec_");
  });

  it("sends nothing to a subscription whose namespace patterns do not match", async () => {
    expect(rx.other.received).toHaveLength(0);
    expect(await deliveries("other-tenant")).toHaveLength(0);
  });

  it("410 disables the endpoint: one request, then nothing", async () => {
    expect(rx.gone.received).toHaveLength(1);
    const subs = (await webhooks.listWebhookSubscriptions({})).subscriptions;
    const gone = subs.find((s) => s.id === "gone");
    expect(gone).toMatchObject({ disabled: true, secretCount: 1 });
    expect(JSON.stringify(subs)).not.toContain("whsec_");
    // The first answered 410; a later event is not written for it, or marked disabled unsent.
    const ds = await deliveries("gone");
    expect(ds.length).toBeGreaterThanOrEqual(1);
    expect(ds.every((d) => d.state === WebhookDeliveryState.DISABLED)).toBe(true);
    expect(ds.filter((d) => d.attempts === 1)).toHaveLength(1);
    expect(ds.find((d) => d.attempts === 1)!.attemptLog.map((a) => a.statusCode)).toEqual([410]);
  });

  it("honours Retry-After on a 429", async () => {
    await until("busy retried", () => (rx.busy.received.length >= 3 ? true : undefined), 20_000);
    const first = rx.busy.received[0]!;
    const retry = rx.busy.received.find((r, i) => i > 0 && r.headers["webhook-id"] === first.headers["webhook-id"])!;
    expect(first.status).toBe(429);
    expect(retry.at - first.at).toBeGreaterThanOrEqual(4000);
    // Same id, a new timestamp and signature, still valid.
    expect(verifyNode(retry, S.busy)).toBeTruthy();
  }, 30_000);

  it("marks a delivery dead after the last attempt, then RedeliverWebhook sends it again with the same id", async () => {
    const dead = await until(
      "dead deliveries",
      async () => {
        const ds = await deliveries("dead");
        return ds.length === 2 && ds.every((d) => d.state === WebhookDeliveryState.DEAD) ? ds : undefined;
      },
      30_000,
    );
    for (const d of dead) {
      expect(d.attempts).toBe(10);
      expect(d.attemptLog.map((a) => a.statusCode)).toEqual(Array(10).fill(500));
      expect(d.attemptLog.map((a) => a.errorClass)).toEqual(Array(10).fill("http_500"));
    }
    expect(rx.dead.received).toHaveLength(20);
    rx.dead.answers = [];
    const again = await webhooks.redeliverWebhook({ id: dead[0]!.id });
    expect(again.delivery?.state).toBe(WebhookDeliveryState.PENDING);
    await until("redelivered", () => (rx.dead.received.length >= 21 ? true : undefined), 10_000);
    const last = rx.dead.received.at(-1)!;
    expect(last.headers["webhook-id"]).toBe(dead[0]!.id);
    expect(last.status).toBe(204);
    const after = (await deliveries("dead")).find((d) => d.id === dead[0]!.id)!;
    expect(after).toMatchObject({ state: WebhookDeliveryState.DELIVERED, attempts: 11 });
    // An unknown one cannot be redelivered.
    const err = await webhooks.redeliverWebhook({ id: "msg_nope" }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.NotFound);
  }, 60_000);

  it("survives kill -9 of the server between two attempts: delivered once after the restart", async () => {
    const before = rx.crash.received.length;
    rx.crash.answers = [{ status: 503 }];
    const up = await client.releases.upgradeRelease({ namespace: ns, name: "web", values: { replicaCount: 2 } });
    expect(up.release?.revision).toBe(2);
    // The first attempt failed and was recorded; the next is due in about 2 s.
    await until(
      "the failed first attempt recorded",
      () => server.logs.find((l) => l.msg === "webhook attempt failed; retrying" && l.subscription === "crash"),
      15_000,
    );
    // No helm runs now (the upgrade answered): only the server process is killed.
    server.proc.kill("SIGKILL");
    await new Promise((resolve) => server.proc.once("exit", resolve));
    expect(rx.crash.received.length).toBe(before + 1);
    await start();
    await until("crash delivered", () => (rx.crash.received.length >= before + 2 ? true : undefined), 20_000);
    await sleep(3000);
    const got = rx.crash.received.slice(before);
    expect(got).toHaveLength(2);
    expect(got[0]!.headers["webhook-id"]).toBe(got[1]!.headers["webhook-id"]);
    expect(got.map((r) => r.status)).toEqual([503, 204]);
    const d = (await deliveries("crash")).find((x) => x.id === got[0]!.headers["webhook-id"])!;
    expect(d).toMatchObject({ state: WebhookDeliveryState.DELIVERED, attempts: 2 });
    expect(d.attemptLog.map((a) => a.statusCode)).toEqual([503, 204]);
  }, 90_000);

  it("reloads WEBHOOKS_FILE; a broken file keeps the previous subscriptions", async () => {
    writeFileSync(
      file,
      JSON.stringify({
        subscriptions: [
          {
            id: "x",
            url: "http://169.254.169.254/",
            secrets: [S.node],
            events: ["operation.succeeded"],
            namespaces: [ns],
          },
        ],
      }),
    );
    await until(
      "the reload error",
      () => server.logs.find((l) => l.msg === "WEBHOOKS_FILE is invalid; keeping the previous subscriptions"),
      10_000,
    );
    const err = server.logs.find((l) => l.msg === "WEBHOOKS_FILE is invalid; keeping the previous subscriptions")!;
    expect(String(err.error)).toContain('subscription 0 ("x")');
    expect(String(err.error)).toContain("link-local");
    expect((await webhooks.listWebhookSubscriptions({})).subscriptions).toHaveLength(9);
    expect(JSON.stringify(server.logs)).not.toContain(S.node);
  }, 20_000);
});

describe("bad webhook configuration stops the start with a clear error", () => {
  it.each([
    ["a bad URL", { url: "not a url" }, /subscription 0 \("bad"\): "url" is not a URL/],
    [
      "a short secret",
      { secrets: [`whsec_${randomBytes(8).toString("base64")}`] },
      /secrets\[0\] must hold 24 to 64 bytes/,
    ],
    ["an unknown event type", { events: ["operation.exploded"] }, /events\[0\] "operation.exploded" is unknown/],
    ["a metadata address", { url: "http://169.254.169.254/latest" }, /points at a link-local address/],
  ])(
    "%s",
    async (_what, change, message) => {
      const bad = join(dir, `bad-${randomBytes(4).toString("hex")}.json`);
      writeFileSync(
        bad,
        JSON.stringify([
          {
            id: "bad",
            url: "http://127.0.0.1:9/hook",
            secrets: [S.node],
            events: ["operation.succeeded"],
            namespaces: ["*"],
            ...change,
          },
        ]),
      );
      const err = await startServer({ ...ENV, WEBHOOKS_FILE: bad, AUDIT_SQLITE_PATH: join(dir, "bad.db") }).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(err?.message).toMatch(message);
      expect(err?.message).not.toContain(S.node);
    },
    30_000,
  );
});
