import { create } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ReleaseSchema, ReleaseService, type UninstallReleaseRequest } from "../../../gen/paas/v1/release_pb.js";
import { createRestHandler } from "../../../src/rest/handler.ts";
import { listen, type Listener } from "../../../src/server/listener.ts";
import { contextValuesOf } from "../../../src/server/request-context.ts";
import { auditRecord, createAuditTestApp, MemoryAuditStore } from "../../support/memory-audit-store.ts";

// GET /api/audit?… (gRPC-transcoding query parameters) through the REST handler on a real
// port, and the path / body routes beside it.

const PREFIX = "paas-ws-";
const ADMIN = "admin-key-0123456789abcdef";
const READER_A = "reader-a-0123456789abcdef";

describe("GET /api/audit through the REST handler", () => {
  let server: Listener;
  let base = "";
  let store: MemoryAuditStore;
  // What the stub ReleaseService saw (the path and body routes next to the audit one).
  const seen: Record<string, unknown>[] = [];

  beforeAll(async () => {
    store = new MemoryAuditStore();
    const audit = createAuditTestApp({
      store,
      prefix: PREFIX,
      adminKey: ADMIN,
      keys: [{ id: "reader-a", key: READER_A, namespaces: ["paas-ws-a"], verbs: ["read"] }],
    });
    const routes = (router: ConnectRouter) => {
      audit.routes(router);
      router.service(ReleaseService, {
        getRelease(req) {
          seen.push({ rpc: "GetRelease", namespace: req.namespace, name: req.name });
          return { release: create(ReleaseSchema, { namespace: req.namespace, name: req.name, revision: 1 }) };
        },
        upgradeRelease(req) {
          seen.push({
            rpc: "UpgradeRelease",
            namespace: req.namespace,
            name: req.name,
            version: req.version,
            wait: req.wait,
          });
          return { release: create(ReleaseSchema, { namespace: req.namespace, name: req.name, revision: 2 }) };
        },
        uninstallRelease(req: UninstallReleaseRequest) {
          seen.push({
            rpc: "UninstallRelease",
            namespace: req.namespace,
            name: req.name,
            idempotencyKey: req.idempotencyKey,
          });
          return { message: `Release ${req.name} uninstalled` };
        },
      });
    };
    const handler = createRestHandler({
      routes,
      interceptors: audit.interceptors,
      maxBodyBytes: 64 * 1024,
      logger: audit.logger,
      contextValues: contextValuesOf,
      fallback: (_req, res) => {
        res.statusCode = 418;
        res.end();
      },
    });
    server = await listen(handler, "127.0.0.1", 0);
    base = `http://127.0.0.1:${server.port}`;
  });

  afterAll(() => {
    server.stopAccepting();
    server.closeAll();
  });

  beforeEach(() => {
    store.records.length = 0;
    store.queries.length = 0;
    seen.length = 0;
    const t0 = Date.parse("2026-03-01T00:00:00Z");
    ["paas-ws-a", "paas-ws-b", "paas-ws-a", "", "paas-ws-a"].forEach((namespace, i) =>
      store.records.push(
        auditRecord({
          id: `id-${i}`,
          time: new Date(t0 + i * 60_000),
          namespace,
          stage: i % 2 ? "outcome" : "intent",
          ...(i % 2 ? { outcome: "succeeded" as const } : {}),
          durationMs: i * 1000,
        }),
      ),
    );
  });

  const call = async (method: string, path: string, opts: { key?: string | null; body?: unknown } = {}) => {
    const key = opts.key === undefined ? ADMIN : opts.key;
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        ...(key === null ? {} : { "x-api-key": key }),
        ...(opts.body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
    const text = await res.text();
    return { status: res.status, json: text === "" ? undefined : JSON.parse(text) };
  };

  it("answers the events newest first as snake_case proto3 JSON with ISO times", async () => {
    const res = await call("GET", "/api/audit");
    expect(res.status).toBe(200);
    expect(res.json.events.map((e: { id: string }) => e.id)).toEqual(["id-4", "id-3", "id-2", "id-1", "id-0"]);
    expect(res.json.next_page_token).toBe("");
    expect(res.json.events[1]).toMatchObject({
      id: "id-3",
      time: "2026-03-01T00:03:00.000Z",
      stage: "AUDIT_STAGE_OUTCOME",
      outcome: "AUDIT_OUTCOME_SUCCEEDED",
      operation_id: expect.any(String),
      source_ip: "10.0.0.1",
      duration_ms: "3000",
      revision_before: 0,
      error_code: "",
      namespace: "",
    });
    expect(res.json.events[0].outcome).toBe("AUDIT_OUTCOME_UNSPECIFIED");
    expect(Object.keys(res.json.events[0])).not.toContain("operationId");
  });

  it("reads filters, times and page size from the query string, in either spelling", async () => {
    const res = await call(
      "GET",
      "/api/audit?namespace=paas-ws-a&since=2026-03-01T00:01:00Z&until=2026-03-01T02:04:00%2B02:00&pageSize=1&ignored=1",
    );
    expect(res.status).toBe(200);
    expect(res.json.events.map((e: { id: string }) => e.id)).toEqual(["id-2"]);
    expect(store.queries.at(-1)).toEqual({
      namespace: "paas-ws-a",
      since: new Date("2026-03-01T00:01:00Z"),
      until: new Date("2026-03-01T00:04:00Z"),
      pageSize: 1,
    });
    expect(res.json.next_page_token).toBe("");
  });

  it("pages with page_token", async () => {
    const first = await call("GET", "/api/audit?page_size=2");
    const second = await call(
      "GET",
      `/api/audit?page_size=2&page_token=${encodeURIComponent(first.json.next_page_token)}`,
    );
    const third = await call(
      "GET",
      `/api/audit?page_size=2&page_token=${encodeURIComponent(second.json.next_page_token)}`,
    );
    expect([first, second, third].map((r) => r.json.events.map((e: { id: string }) => e.id))).toEqual([
      ["id-4", "id-3"],
      ["id-2", "id-1"],
      ["id-0"],
    ]);
    expect(third.json.next_page_token).toBe("");
  });

  it("malformed parameters are 422 unprocessable_entity with pydantic-style errors; the service is not called", async () => {
    const res = await call("GET", "/api/audit?page_size=abc&since=yesterday");
    expect(res.status).toBe(422);
    expect(res.json).toMatchObject({ error_type: "unprocessable_entity", request_id: expect.any(String) });
    expect(res.json.detail).toMatch(/^Invalid query parameters: page_size: .*; since: /);
    expect(res.json.detail).not.toContain("yesterday");
    expect(res.json.errors).toEqual([
      { loc: ["query", "page_size"], msg: expect.any(String), type: "int_parsing" },
      { loc: ["query", "since"], msg: expect.any(String), type: "datetime_parsing" },
    ]);
    expect(store.queries).toEqual([]);
  });

  it("well-formed values the service refuses are its 400s; a bad page token too", async () => {
    for (const path of [
      "/api/audit?page_size=1001",
      "/api/audit?since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z",
      "/api/audit?page_token=garbage",
    ]) {
      const res = await call("GET", path);
      expect(res.status, path).toBe(400);
      expect(res.json.error_type).toBe("validation_error");
    }
  });

  it("a scoped key sees its namespaces only; another namespace is 403; no key is 401", async () => {
    const mine = await call("GET", "/api/audit", { key: READER_A });
    expect(mine.status).toBe(200);
    expect(mine.json.events.map((e: { id: string }) => e.id)).toEqual(["id-4", "id-2", "id-0"]);
    const other = await call("GET", "/api/audit?namespace=paas-ws-b", { key: READER_A });
    expect(other.status).toBe(403);
    expect(other.json).toMatchObject({
      error_type: "forbidden",
      detail: 'namespace "paas-ws-b" is outside this API key\'s scope',
    });
    expect((await call("GET", "/api/audit", { key: null })).status).toBe(401);
  });

  it("HEAD works where GET does; other verbs are 405", async () => {
    expect((await call("HEAD", "/api/audit?page_size=1")).status).toBe(200);
    const post = await call("POST", "/api/audit", { body: {} });
    expect(post.status).toBe(405);
  });

  it("path routes: the path wins over a query parameter of the same name", async () => {
    const res = await call("GET", "/api/releases/paas-ws-a/web?namespace=paas-ws-b&name=evil");
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ namespace: "paas-ws-a", name: "web", revision: 1 });
    expect(seen).toEqual([{ rpc: "GetRelease", namespace: "paas-ws-a", name: "web" }]);
  });

  it("body routes: fields come from the body only, the query string is ignored", async () => {
    const res = await call("PATCH", "/api/releases/paas-ws-a/web?version=9.9.9&wait=true", {
      body: { version: "1.2.3" },
    });
    expect(res.status).toBe(200);
    expect(seen).toEqual([
      { rpc: "UpgradeRelease", namespace: "paas-ws-a", name: "web", version: "1.2.3", wait: false },
    ]);
    const bad = await call("PATCH", "/api/releases/paas-ws-a/web?wait=notabool", { body: { version: 5 } });
    expect(bad.status).toBe(422);
    expect(bad.json.errors).toEqual([
      { loc: ["body", "version"], msg: "Input should be a valid string", type: "string_type" },
    ]);
  });

  it("body-less DELETE takes its non-path fields from the query (idempotency_key, as documented)", async () => {
    const res = await call("DELETE", "/api/releases/paas-ws-a/web?idempotency_key=retry-1");
    expect(res.status).toBe(200);
    expect(seen).toEqual([{ rpc: "UninstallRelease", namespace: "paas-ws-a", name: "web", idempotencyKey: "retry-1" }]);
  });
});
