import { describe, expect, it } from "vitest";
import type { OperationRecord } from "../../../src/domain/operation.ts";
import type { NewDelivery } from "../../../src/domain/webhook.ts";
import {
  deliveriesFor,
  eventPayload,
  MAX_PAYLOAD_BYTES,
  outboxPlanner,
  stepListener,
} from "../../../src/webhooks/events.ts";
import type { Subscription } from "../../../src/webhooks/subscriptions.ts";

const op = (over: Partial<OperationRecord> = {}): OperationRecord => ({
  id: "op-1",
  kind: "install",
  method: "paas.v1.ReleaseService/InstallRelease",
  namespace: "paas-ws-acme",
  release: "web",
  caller: "erp",
  idempotencyKey: "k",
  state: "succeeded",
  createdAt: new Date("2030-01-01T00:00:00Z"),
  startedAt: new Date("2030-01-01T00:00:01Z"),
  finishedAt: new Date("2030-01-01T00:00:09Z"),
  steps: [{ name: "helm", order: 1, state: "succeeded", detail: "ok", startedAt: new Date("2030-01-01T00:00:02Z") }],
  request: '{"values":{"password":"hunter2"}}',
  params: { values_sha256: "abc" },
  response: '{"release":{"values":{"password":"hunter2"}}}',
  responseType: "paas.v1.InstallReleaseResponse",
  replica: "r1",
  cancelRequested: false,
  updatedAt: new Date(),
  ...over,
});

const sub = (over: Partial<Subscription> = {}): Subscription => ({
  id: "a",
  url: "https://a.example/h",
  secrets: ["whsec_x"],
  events: ["operation.succeeded", "operation.failed"],
  namespaces: ["paas-ws-acme"],
  ...over,
});

describe("webhook events", () => {
  it("carries the operation without request, params, response or values", () => {
    const body = JSON.parse(eventPayload("operation.succeeded", op(), new Date("2030-01-01T00:00:10Z")));
    expect(body).toEqual({
      type: "operation.succeeded",
      timestamp: "2030-01-01T00:00:10.000Z",
      data: {
        id: "op-1",
        kind: "install",
        method: "paas.v1.ReleaseService/InstallRelease",
        target: { namespace: "paas-ws-acme", release: "web" },
        state: "succeeded",
        caller: "erp",
        created_at: "2030-01-01T00:00:00.000Z",
        started_at: "2030-01-01T00:00:01.000Z",
        finished_at: "2030-01-01T00:00:09.000Z",
        steps: [{ name: "helm", order: 1, state: "succeeded", detail: "ok", started_at: "2030-01-01T00:00:02.000Z" }],
      },
    });
    expect(JSON.stringify(body)).not.toContain("hunter2");
  });

  it("stays under 20 kB however long the steps and the error are", () => {
    const steps = Array.from({ length: 200 }, (_, i) => ({
      name: `step-${i}`,
      order: i + 1,
      state: "failed" as const,
      detail: "x".repeat(5000),
      startedAt: new Date(),
    }));
    const text = eventPayload(
      "operation.failed",
      op({ state: "failed", steps, error: { code: "INTERNAL", reason: "", message: "m".repeat(100_000) } }),
      new Date(),
    );
    expect(Buffer.byteLength(text)).toBeLessThan(MAX_PAYLOAD_BYTES);
    const parsed = JSON.parse(text);
    expect(parsed.data.error.code).toBe("INTERNAL");
    expect(parsed.truncated).toBe(true);
    expect(parsed.data.steps.at(-1).name).toBe("step-199");
  });

  it("plans one delivery per matching subscription, each with its own webhook-id, none for disabled endpoints", () => {
    const subs = [
      sub(),
      sub({ id: "b", url: "https://b.example/h", namespaces: ["paas-ws-*"] }),
      sub({ id: "other", namespaces: ["paas-ws-other"] }),
      sub({ id: "fails-only", events: ["operation.failed"] }),
      sub({ id: "off", url: "https://off.example/h", namespaces: ["*"] }),
    ];
    const rows = deliveriesFor(subs, "operation.succeeded", op(), new Date(), new Set(["off https://off.example/h"]));
    expect(rows.map((r) => r.subscriptionId)).toEqual(["a", "b"]);
    expect(new Set(rows.map((r) => r.id)).size).toBe(2);
    for (const r of rows) expect(r.id).toMatch(/^msg_[A-Za-z0-9_-]{24}$/);
    expect(rows[0]).toMatchObject({ eventType: "operation.succeeded", operationId: "op-1", namespace: "paas-ws-acme" });
  });

  it("the planner maps the end state to the event type and plans nothing for an operation that has not ended", () => {
    const plan = outboxPlanner(
      () => [sub({ events: ["operation.cancelled", "operation.failed", "operation.succeeded"] })],
      () => new Set(),
    );
    expect(plan(op({ state: "cancelled" }))[0]!.eventType).toBe("operation.cancelled");
    expect(plan(op({ state: "failed" }))[0]!.eventType).toBe("operation.failed");
    expect(plan(op({ state: "running" }))).toEqual([]);
  });
});

describe("operation.step events", () => {
  it("carry the step, go only to subscriptions that opted in, and report enqueue failures", async () => {
    const written: NewDelivery[][] = [];
    const errors: unknown[] = [];
    const listen = stepListener(
      () => [sub(), sub({ id: "steps", events: ["operation.step"] })],
      () => new Set(),
      async (rows) => {
        written.push(rows);
        if (rows[0]!.payload.includes('"state":"failed"')) throw new Error("store down");
      },
      (err) => errors.push(err),
    );
    const step = { name: "helm", order: 1, state: "running" as const, detail: "installing", startedAt: new Date() };
    listen(op({ state: "running" }), step);
    expect(written).toHaveLength(1);
    expect(written[0]!.map((r) => r.subscriptionId)).toEqual(["steps"]);
    const body = JSON.parse(written[0]![0]!.payload);
    expect(body.type).toBe("operation.step");
    expect(body.data.step).toMatchObject({ name: "helm", order: 1, state: "running", detail: "installing" });
    listen(op({ state: "running" }), { ...step, state: "failed" });
    await new Promise((r) => setTimeout(r, 10));
    expect(errors.map((e) => (e as Error).message)).toEqual(["store down"]);
  });
});
