import { randomBytes } from "node:crypto";
import { Code, ConnectError, createClient, createRouterTransport, type ConnectRouter } from "@connectrpc/connect";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { WebhookDeliveryState, WebhookService } from "../../../gen/paas/v1/webhook_pb.js";
import { SqliteAuditStore } from "../../../src/audit/sqlite-store.ts";
import { sha256 } from "../../../src/auth/key-file.ts";
import { KeyStore } from "../../../src/auth/key-store.ts";
import { Scope } from "../../../src/auth/scopes.ts";
import { apiKeyInterceptor, scopeInterceptor } from "../../../src/interceptors/api-key.ts";
import { namespacePrefixInterceptor } from "../../../src/interceptors/namespace-prefix.ts";
import { observabilityInterceptor } from "../../../src/interceptors/observability.ts";
import { createWebhookService } from "../../../src/services/webhook-service.ts";
import { SubscriptionRegistry } from "../../../src/webhooks/subscriptions.ts";

// paas.v1.WebhookService over the real interceptors and a SQLite store: who may call it, what
// it answers (never a secret nor a payload), and its errors.

const ADMIN = `admin-${randomBytes(12).toString("hex")}`;
const SCOPED = `scoped-${randomBytes(12).toString("hex")}`;
const SECRET = `whsec_${randomBytes(32).toString("base64")}`;
const stores: SqliteAuditStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

async function setup() {
  const store = new SqliteAuditStore({ path: ":memory:" });
  stores.push(store);
  await store.migrate();
  const subscriptions = new SubscriptionRegistry({
    subscriptions: [
      {
        id: "erp",
        url: "https://erp.example/h",
        secrets: [SECRET],
        events: ["operation.succeeded"],
        namespaces: ["*"],
      },
    ],
    parse: { prefix: "paas-ws-", allowLoopback: false },
  });
  const keys = new KeyStore({
    staticKeys: [ADMIN],
    prefix: "paas-ws-",
    namedKeys: [{ id: "tenant", digest: sha256(SCOPED), scope: new Scope(["paas-ws-a"], ["read", "deploy"]) }],
  });
  const interceptors = [
    observabilityInterceptor(pino({ level: "silent" })),
    apiKeyInterceptor(keys),
    namespacePrefixInterceptor("paas-ws-"),
    scopeInterceptor(),
  ];
  const service = createWebhookService({
    store,
    subscriptions,
    disabled: () => new Set(["erp https://erp.example/h"]),
  });
  const routes = (router: ConnectRouter) => router.service(WebhookService, service);
  const client = (apiKey: string) =>
    createClient(
      WebhookService,
      createRouterTransport(routes, {
        router: { interceptors },
        transport: {
          interceptors: [
            (next) => (req) => {
              req.header.set("x-api-key", apiKey);
              return next(req);
            },
          ],
        },
      }),
    );
  return { store, client };
}

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e).code,
  );

describe("WebhookService", () => {
  it("lists subscriptions without secrets, and deliveries with their attempts but without payloads", async () => {
    const { store, client } = await setup();
    const admin = client(ADMIN);
    const subs = await admin.listWebhookSubscriptions({});
    expect(subs.subscriptions).toEqual([
      expect.objectContaining({ id: "erp", url: "https://erp.example/h", secretCount: 1, disabled: true }),
    ]);
    expect(JSON.stringify(subs)).not.toContain("whsec_");
    await store.enqueueDeliveries([
      {
        id: "msg_1",
        subscriptionId: "erp",
        eventType: "operation.succeeded",
        operationId: "op-1",
        namespace: "paas-ws-a",
        payload: '{"secret-looking":"payload"}',
        createdAt: new Date(),
      },
    ]);
    const [claimed] = await store.claimDeliveries("r", 60_000, 1);
    await store.recordAttempt(
      {
        deliveryId: claimed!.id,
        attempt: 1,
        at: new Date(),
        statusCode: 500,
        durationMs: 7,
        errorClass: "http_500",
        replica: "r",
      },
      { state: "dead" },
    );
    const page = await admin.listWebhookDeliveries({ state: WebhookDeliveryState.DEAD });
    expect(page.deliveries).toHaveLength(1);
    expect(page.deliveries[0]).toMatchObject({
      id: "msg_1",
      attempts: 1,
      lastStatusCode: 500,
      lastErrorClass: "http_500",
    });
    expect(page.deliveries[0]!.attemptLog.map((a) => a.statusCode)).toEqual([500]);
    expect(JSON.stringify(page, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))).not.toContain("payload");
    expect((await admin.listWebhookDeliveries({ state: WebhookDeliveryState.DELIVERED })).deliveries).toEqual([]);
    const again = await admin.redeliverWebhook({ id: "msg_1" });
    expect(again.delivery?.state).toBe(WebhookDeliveryState.PENDING);
    // Pending now: not again.
    expect(await codeOf(admin.redeliverWebhook({ id: "msg_1" }))).toBe(Code.FailedPrecondition);
    expect(await codeOf(admin.redeliverWebhook({ id: "msg_unknown" }))).toBe(Code.NotFound);
    expect(await codeOf(admin.redeliverWebhook({ id: "" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(admin.listWebhookDeliveries({ pageSize: 5000 }))).toBe(Code.InvalidArgument);
    expect(await codeOf(admin.listWebhookDeliveries({ pageToken: "garbage!" }))).toBe(Code.InvalidArgument);
  });

  it("refuses scoped keys (PERMISSION_DENIED) and unknown keys (UNAUTHENTICATED)", async () => {
    const { client } = await setup();
    const scoped = client(SCOPED);
    expect(await codeOf(scoped.listWebhookSubscriptions({}))).toBe(Code.PermissionDenied);
    expect(await codeOf(scoped.listWebhookDeliveries({}))).toBe(Code.PermissionDenied);
    expect(await codeOf(scoped.redeliverWebhook({ id: "msg_1" }))).toBe(Code.PermissionDenied);
    expect(await codeOf(client("nobody-knows-this-key").listWebhookSubscriptions({}))).toBe(Code.Unauthenticated);
  });
});
