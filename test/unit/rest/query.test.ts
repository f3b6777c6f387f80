import { create, type DescField } from "@bufbuild/protobuf";
import { FieldMaskSchema, FieldOptions_OptionTargetType, FieldOptionsSchema, SourceCodeInfo_LocationSchema, UninterpretedOptionSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ReleaseSchema, ReleaseService, type UninstallReleaseRequest } from "../../../gen/paas/v1/release_pb.js";
import { createRestHandler } from "../../../src/rest/handler.ts";
import { assertQuerySupported, decodeQuery, queryNamesOf } from "../../../src/rest/query.ts";
import { buildRoutes } from "../../../src/rest/routes.ts";
import { listen, type Listener } from "../../../src/server/listener.ts";
import { contextValuesOf } from "../../../src/server/request-context.ts";
import { auditRecord, createAuditTestApp, MemoryAuditStore } from "../../support/memory-audit-store.ts";

// gRPC-transcoding query parameters in the REST layer: the decoder on its own, then
// GET /api/audit?… through the REST handler on a real port, and the path / body routes beside it.

const PREFIX = "paas-ws-";
const ADMIN = "admin-key-0123456789abcdef";
const READER_A = "reader-a-0123456789abcdef";

const fieldsOf = (fields: readonly DescField[]) => queryNamesOf(fields);

describe("decodeQuery", () => {
  const audit = buildRoutes().find((r) => r.method.name === "ListAuditEvents")!;
  const q = (s: string) => decodeQuery(audit.queryFields, new URLSearchParams(s));

  it("reads the request fields by proto name and by JSON name; unknown parameters are ignored", () => {
    const { init, errors } = q("namespace=paas-ws-a&release=web&caller=k1&operationId=op-1&page_size=10&pageToken=t&utm_source=x&format=json");
    expect(errors).toEqual([]);
    expect(init).toEqual({ namespace: "paas-ws-a", release: "web", caller: "k1", operationId: "op-1", pageSize: 10, pageToken: "t" });
  });

  it("reads Timestamps as RFC 3339 with an offset, nanoseconds kept, a '+' turned space still an offset", () => {
    const { init, errors } = q("since=2026-01-01T00:00:00Z&until=2026-01-01T12:30:00.123456789%2B02:00");
    expect(errors).toEqual([]);
    expect(init.since).toEqual({ seconds: BigInt(Date.parse("2026-01-01T00:00:00Z") / 1000), nanos: 0 });
    expect(init.until).toEqual({ seconds: BigInt(Date.parse("2026-01-01T10:30:00Z") / 1000), nanos: 123_456_789 });
    expect(q("since=2026-01-01T02:00:00+02:00").init.since).toEqual({ seconds: BigInt(Date.parse("2026-01-01T00:00:00Z") / 1000), nanos: 0 });
    expect(q("since=2024-02-29t23:59:59.5-01:00").init.since).toEqual({ seconds: BigInt(Date.parse("2024-03-01T00:59:59Z") / 1000), nanos: 500_000_000 });
    expect(q("since=0001-01-01T00:00:00Z").init.since).toEqual({ seconds: -62_135_596_800n, nanos: 0 });
  });

  it("refuses malformed values with pydantic-style errors that never echo the value", () => {
    for (const [query, loc, type] of [
      ["page_size=abc", ["query", "page_size"], "int_parsing"],
      ["pageSize=1.5", ["query", "pageSize"], "int_parsing"],
      ["page_size=", ["query", "page_size"], "int_parsing"],
      ["page_size=99999999999", ["query", "page_size"], "int_range"],
      ["since=yesterday", ["query", "since"], "datetime_parsing"],
      ["since=2026-01-01T00:00:00", ["query", "since"], "datetime_parsing"],
      ["since=2026-02-29T00:00:00Z", ["query", "since"], "datetime_parsing"],
      ["until=2026-01-01T24:00:00Z", ["query", "until"], "datetime_parsing"],
      ["until=10000-01-01T00:00:00Z", ["query", "until"], "datetime_parsing"],
      ["until=0000-12-31T23:59:59Z", ["query", "until"], "datetime_range"],
      ["namespace=a&namespace=b", ["query", "namespace"], "single_value"],
      ["page_size=1&pageSize=2", ["query", "page_size"], "single_value"],
    ] as const) {
      const { init, errors } = q(query);
      expect(errors, query).toEqual([{ loc, msg: expect.any(String), type }]);
      expect(JSON.stringify(errors)).not.toContain("yesterday");
      expect(init, query).toEqual({});
    }
  });

  const field = (schema: { fields: DescField[] }, name: string) => schema.fields.find((f) => f.name === name)!;

  it("reads bools, 64-bit integers, doubles and enums (by name or number)", () => {
    const fields = fieldsOf([field(FieldOptionsSchema, "packed"), field(FieldOptionsSchema, "ctype"), field(UninterpretedOptionSchema, "positive_int_value"), field(UninterpretedOptionSchema, "negative_int_value"), field(UninterpretedOptionSchema, "double_value")]);
    const ok = decodeQuery(fields, new URLSearchParams("packed=yes&ctype=CORD&positive_int_value=18446744073709551615&negativeIntValue=-9223372036854775808&double_value=-2.5e3"));
    expect(ok.errors).toEqual([]);
    expect(ok.init).toEqual({ packed: true, ctype: 1, positiveIntValue: 18446744073709551615n, negativeIntValue: -9223372036854775808n, doubleValue: -2500 });
    expect(decodeQuery(fields, new URLSearchParams("packed=FALSE&ctype=2")).init).toEqual({ packed: false, ctype: 2 });
    const bad = decodeQuery(fields, new URLSearchParams("packed=maybe&ctype=RED&positive_int_value=-1&double_value=NaN"));
    expect(bad.errors.map((e) => `${e.loc[1]} ${e.type}`)).toEqual(["packed bool_parsing", "ctype enum", "positive_int_value int_range", "double_value float_parsing"]);
    expect(bad.errors[1]!.msg).toBe("Input should be 'STRING', 'CORD' or 'STRING_PIECE'");
    expect(bad.init).toEqual({});
  });

  it("reads repeated fields from repeated parameters, in order, and names the bad element", () => {
    const fields = fieldsOf([field(FieldMaskSchema, "paths"), field(SourceCodeInfo_LocationSchema, "path"), field(FieldOptionsSchema, "targets")]);
    const ok = decodeQuery(fields, new URLSearchParams("paths=a&paths=b&path=1&path=-2&targets=TARGET_TYPE_FILE&targets=9"));
    expect(ok.errors).toEqual([]);
    expect(ok.init).toEqual({ paths: ["a", "b"], path: [1, -2], targets: [FieldOptions_OptionTargetType.TARGET_TYPE_FILE, FieldOptions_OptionTargetType.TARGET_TYPE_METHOD] });
    const bad = decodeQuery(fields, new URLSearchParams("path=1&path=x"));
    expect(bad.errors).toEqual([{ loc: ["query", "path", 1], msg: expect.stringContaining("valid integer"), type: "int_parsing" }]);
    expect(bad.init).toEqual({});
  });

  it("reads Durations as seconds or proto3 JSON's \"1.5s\"", () => {
    const timeout = [...buildRoutes().find((r) => r.method.name === "InstallRelease")!.bodyFields].find((f) => f.name === "timeout")!;
    const fields = fieldsOf([timeout]);
    expect(decodeQuery(fields, new URLSearchParams("timeout=300")).init).toEqual({ timeout: { seconds: 300n, nanos: 0 } });
    expect(decodeQuery(fields, new URLSearchParams("timeout=1.5s")).init).toEqual({ timeout: { seconds: 1n, nanos: 500_000_000 } });
    expect(decodeQuery(fields, new URLSearchParams("timeout=5m")).errors[0]?.type).toBe("time_delta_parsing");
    expect(decodeQuery(fields, new URLSearchParams("timeout=-1")).errors[0]?.type).toBe("time_delta_parsing");
  });

  it("refuses at start a query field it cannot read", () => {
    const method = ReleaseService.method.getRelease;
    expect(() => assertQuerySupported(method, field(UninterpretedOptionSchema, "string_value"))).toThrow(/query field string_value/);
    expect(() => assertQuerySupported(method, field(UninterpretedOptionSchema, "name"))).toThrow(/query field name/);
    expect(() => assertQuerySupported(method, field(ReleaseSchema, "values"))).toThrow(/query field values/);
    expect(() => assertQuerySupported(method, field(UninterpretedOptionSchema, "double_value"))).not.toThrow();
  });

  it("only body-less routes take query parameters, and never a path field", () => {
    const routes = buildRoutes();
    const names = (name: string) => [...new Set(routes.find((r) => r.method.name === name)!.queryFields.values())].map((f) => f.name);
    expect(names("GetRelease")).toEqual([]);
    expect(names("UninstallRelease")).toEqual(["idempotency_key", "async"]);
    expect(names("UpgradeRelease")).toEqual([]);
    expect(names("ListAuditEvents")).toEqual(["namespace", "release", "caller", "since", "until", "page_size", "page_token", "operation_id"]);
  });
});

describe("GET /api/audit through the REST handler", () => {
  let server: Listener;
  let base = "";
  let store: MemoryAuditStore;
  // What the stub ReleaseService saw (the path and body routes next to the audit one).
  const seen: Record<string, unknown>[] = [];

  beforeAll(async () => {
    store = new MemoryAuditStore();
    const audit = createAuditTestApp({ store, prefix: PREFIX, adminKey: ADMIN, keys: [{ id: "reader-a", key: READER_A, namespaces: ["paas-ws-a"], verbs: ["read"] }] });
    const routes = (router: ConnectRouter) => {
      audit.routes(router);
      router.service(ReleaseService, {
        getRelease(req) {
          seen.push({ rpc: "GetRelease", namespace: req.namespace, name: req.name });
          return { release: create(ReleaseSchema, { namespace: req.namespace, name: req.name, revision: 1 }) };
        },
        upgradeRelease(req) {
          seen.push({ rpc: "UpgradeRelease", namespace: req.namespace, name: req.name, version: req.version, wait: req.wait });
          return { release: create(ReleaseSchema, { namespace: req.namespace, name: req.name, revision: 2 }) };
        },
        uninstallRelease(req: UninstallReleaseRequest) {
          seen.push({ rpc: "UninstallRelease", namespace: req.namespace, name: req.name, idempotencyKey: req.idempotencyKey });
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
      store.records.push(auditRecord({ id: `id-${i}`, time: new Date(t0 + i * 60_000), namespace, stage: i % 2 ? "outcome" : "intent", ...(i % 2 ? { outcome: "succeeded" as const } : {}), durationMs: i * 1000 })),
    );
  });

  const call = async (method: string, path: string, opts: { key?: string | null; body?: unknown } = {}) => {
    const key = opts.key === undefined ? ADMIN : opts.key;
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { ...(key === null ? {} : { "x-api-key": key }), ...(opts.body === undefined ? {} : { "content-type": "application/json" }) },
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
    expect(res.json.events[1]).toMatchObject({ id: "id-3", time: "2026-03-01T00:03:00.000Z", stage: "AUDIT_STAGE_OUTCOME", outcome: "AUDIT_OUTCOME_SUCCEEDED", operation_id: expect.any(String), source_ip: "10.0.0.1", duration_ms: "3000", revision_before: 0, error_code: "", namespace: "" });
    expect(res.json.events[0].outcome).toBe("AUDIT_OUTCOME_UNSPECIFIED");
    expect(Object.keys(res.json.events[0])).not.toContain("operationId");
  });

  it("reads filters, times and page size from the query string, in either spelling", async () => {
    const res = await call("GET", "/api/audit?namespace=paas-ws-a&since=2026-03-01T00:01:00Z&until=2026-03-01T02:04:00%2B02:00&pageSize=1&ignored=1");
    expect(res.status).toBe(200);
    expect(res.json.events.map((e: { id: string }) => e.id)).toEqual(["id-2"]);
    expect(store.queries.at(-1)).toEqual({ namespace: "paas-ws-a", since: new Date("2026-03-01T00:01:00Z"), until: new Date("2026-03-01T00:04:00Z"), pageSize: 1 });
    expect(res.json.next_page_token).toBe("");
  });

  it("pages with page_token", async () => {
    const first = await call("GET", "/api/audit?page_size=2");
    const second = await call("GET", `/api/audit?page_size=2&page_token=${encodeURIComponent(first.json.next_page_token)}`);
    const third = await call("GET", `/api/audit?page_size=2&page_token=${encodeURIComponent(second.json.next_page_token)}`);
    expect([first, second, third].map((r) => r.json.events.map((e: { id: string }) => e.id))).toEqual([["id-4", "id-3"], ["id-2", "id-1"], ["id-0"]]);
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
    for (const path of ["/api/audit?page_size=1001", "/api/audit?since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z", "/api/audit?page_token=garbage"]) {
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
    expect(other.json).toMatchObject({ error_type: "forbidden", detail: 'namespace "paas-ws-b" is outside this API key\'s scope' });
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
    const res = await call("PATCH", "/api/releases/paas-ws-a/web?version=9.9.9&wait=true", { body: { version: "1.2.3" } });
    expect(res.status).toBe(200);
    expect(seen).toEqual([{ rpc: "UpgradeRelease", namespace: "paas-ws-a", name: "web", version: "1.2.3", wait: false }]);
    const bad = await call("PATCH", "/api/releases/paas-ws-a/web?wait=notabool", { body: { version: 5 } });
    expect(bad.status).toBe(422);
    expect(bad.json.errors).toEqual([{ loc: ["body", "version"], msg: "Input should be a valid string", type: "string_type" }]);
  });

  it("body-less DELETE takes its non-path fields from the query (idempotency_key, as documented)", async () => {
    const res = await call("DELETE", "/api/releases/paas-ws-a/web?idempotency_key=retry-1");
    expect(res.status).toBe(200);
    expect(seen).toEqual([{ rpc: "UninstallRelease", namespace: "paas-ws-a", name: "web", idempotencyKey: "retry-1" }]);
  });
});
