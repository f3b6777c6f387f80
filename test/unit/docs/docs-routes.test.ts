import { readFileSync } from "node:fs";
import {
  getOption,
  hasOption,
  ScalarType,
  type DescField,
  type DescMessage,
  type DescService,
} from "@bufbuild/protobuf";
import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "vitest";
import { http } from "../../../gen/google/api/annotations_pb.js";
import { file_paas_v1_namespace, NamespaceService } from "../../../gen/paas/v1/namespace_pb.js";
import { file_paas_v1_release, ReleaseService } from "../../../gen/paas/v1/release_pb.js";
import { DEFAULT_DOCUMENT_PATH } from "../../../src/docs/docs-routes.ts";

// The committed gen/openapi/openapi.json (scripts/generate.sh --check keeps it fresh), checked
// against the generated descriptors, which the test reads independently of the plugin.

type Obj = Record<string, any>;
const doc = JSON.parse(readFileSync(DEFAULT_DOCUMENT_PATH, "utf8")) as Obj;
const services: DescService[] = [ReleaseService, NamespaceService];
const methods = services.flatMap((s) => s.methods);
const HTTP_METHODS = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
const operations = Object.entries(doc.paths as Obj).flatMap(([path, item]) =>
  Object.entries(item as Obj)
    .filter(([m]) => HTTP_METHODS.includes(m))
    .map(([method, op]) => ({ path, method, op: op as Obj })),
);
const restOperations = operations.filter((o) => o.path.startsWith("/api/"));

/** resolve follows a local $ref ("#/components/…") to its target, or throws. */
function resolve(ref: string): Obj {
  expect(ref.startsWith("#/")).toBe(true);
  let node: any = doc;
  for (const part of ref.slice(2).split("/")) {
    node = node?.[part.replaceAll("~1", "/").replaceAll("~0", "~")];
    if (node === undefined) throw new Error(`unresolved $ref ${ref}`);
  }
  return node as Obj;
}

function refs(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) node.forEach((n) => refs(n, out));
  else if (node !== null && typeof node === "object") {
    for (const [k, v] of Object.entries(node)) {
      if (k === "$ref" && typeof v === "string") out.push(v);
      else refs(v, out);
    }
  }
  return out;
}

function jsonBody(response: Obj): Obj {
  const r = response.$ref ? resolve(response.$ref) : response;
  return r.content["application/json"].schema as Obj;
}

function template(m: (typeof methods)[number]): { verb: string; path: string } | undefined {
  if (!hasOption(m, http)) return undefined;
  const rule = getOption(m, http);
  if (rule.pattern.case === undefined || rule.pattern.case === "custom") throw new Error("unexpected pattern");
  return { verb: rule.pattern.case, path: rule.pattern.value };
}

describe("gen/openapi/openapi.json", () => {
  it("is a valid OpenAPI 3.1 document", async () => {
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(validator.version).toBe("3.1");
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.info.title).toBe("PaaS Operator API");
    expect(doc.info.version).toBe("v1");
  });

  it("resolves every $ref", () => {
    const all = refs(doc);
    expect(all.length).toBeGreaterThan(50);
    for (const ref of new Set(all)) expect(() => resolve(ref), ref).not.toThrow();
  });

  it("uses only the JSON Schema keywords and types it means to (the validator does not check schemas)", () => {
    const keywords = new Set([
      "type",
      "format",
      "description",
      "properties",
      "required",
      "items",
      "additionalProperties",
      "enum",
      "const",
      "anyOf",
      "$ref",
      "minimum",
      "maximum",
      "pattern",
      "examples",
      "contentEncoding",
      "title",
    ]);
    const types = new Set(["string", "number", "integer", "boolean", "object", "array", "null"]);
    const check = (schema: Obj, where: string): void => {
      for (const key of Object.keys(schema)) expect(keywords, `${where}: ${key}`).toContain(key);
      for (const t of [schema.type ?? []].flat()) expect(types, `${where}: type ${t}`).toContain(t);
      for (const [name, sub] of Object.entries((schema.properties ?? {}) as Obj)) check(sub, `${where}.${name}`);
      for (const sub of schema.anyOf ?? []) check(sub, `${where}|`);
      if (typeof schema.items === "object") check(schema.items, `${where}[]`);
      if (typeof schema.additionalProperties === "object") check(schema.additionalProperties, `${where}{}`);
      for (const r of schema.required ?? [])
        expect(Object.keys(schema.properties ?? {}), `${where} requires ${r}`).toContain(r);
    };
    for (const [name, schema] of Object.entries(doc.components.schemas as Obj)) check(schema, name);
    for (const { path, method, op } of operations) {
      for (const p of op.parameters ?? []) check(p.schema, `${method} ${path} ${p.name}`);
      for (const media of Object.values((op.requestBody?.content ?? {}) as Obj))
        check(media.schema, `${method} ${path} body`);
      for (const r of Object.values(op.responses as Obj))
        for (const media of Object.values((r.content ?? {}) as Obj)) check(media.schema, `${method} ${path} response`);
    }
  });

  it("has unique operationIds and a tag on every operation", () => {
    const ids = operations.map((o) => o.op.operationId);
    expect(new Set(ids).size).toBe(ids.length);
    const tags = new Set((doc.tags as Obj[]).map((t) => t.name));
    for (const { op } of operations) for (const t of op.tags) expect(tags).toContain(t);
  });

  it("lists every RPC with a google.api.http rule under its method and path", () => {
    const annotated = methods.filter((m) => hasOption(m, http));
    expect(annotated.length).toBe(13);
    expect(methods.filter((m) => !hasOption(m, http)).map((m) => m.name)).toEqual(["WatchReleaseStatus"]);
    for (const m of annotated) {
      const t = template(m)!;
      const op = doc.paths[t.path]?.[t.verb];
      expect(op, `${t.verb} ${t.path}`).toBeDefined();
      expect(op.operationId).toBe(m.name);
      expect(op.tags).toEqual([`${m.parent.name} (REST)`]);
      const vars = [...t.path.matchAll(/\{(\w+)\}/g)].map((v) => v[1]);
      expect(op.parameters?.filter((p: Obj) => p.in === "path").map((p: Obj) => p.name) ?? []).toEqual(vars);
    }
    // The REST contract's paths, spelled out once.
    const expected = [
      "POST /api/releases",
      "GET /api/releases/{namespace}/{name}",
      "PATCH /api/releases/{namespace}/{name}",
      "DELETE /api/releases/{namespace}/{name}",
      "POST /api/releases/{namespace}/{name}/rollback",
      "POST /api/releases/{namespace}/{name}/recover",
      "GET /api/releases/{namespace}/{name}/revisions",
      "GET /api/releases/{namespace}/{name}/status",
      "POST /api/namespaces",
    ];
    const listed = restOperations.map((o) => `${o.method.toUpperCase()} ${o.path}`);
    for (const e of expected) expect(listed).toContain(e);
  });

  it("has a Connect POST path for every RPC: JSON for unary, enveloped JSON for streaming", () => {
    for (const m of methods) {
      const op = doc.paths[`/${m.parent.typeName}/${m.name}`]?.post;
      expect(op, m.name).toBeDefined();
      expect(op.operationId).toBe(`${m.parent.typeName}.${m.name}`);
      const type = m.methodKind === "unary" ? "application/json" : "application/connect+json";
      expect(op.requestBody.content[type].schema).toEqual({ $ref: `#/components/schemas/${m.input.typeName}` });
      expect(op.responses["200"].content[type].schema).toEqual({ $ref: `#/components/schemas/${m.output.typeName}` });
      if (m.methodKind === "unary")
        expect(resolve(op.responses.default.$ref).content["application/json"].schema).toEqual({
          $ref: "#/components/schemas/connect.Error",
        });
    }
    expect(doc.paths["/paas.v1.ReleaseService/WatchReleaseStatus"].post["x-connect-stream-type"]).toBe("server");
  });

  it("describes the probes without a key, and asks for X-API-Key everywhere else", () => {
    expect(doc.components.securitySchemes.ApiKey).toMatchObject({ type: "apiKey", in: "header", name: "X-API-Key" });
    expect(doc.security).toEqual([{ ApiKey: [] }]);
    const probes = ["/health", "/health/live", "/health/ready", "/healthz", "/readyz"];
    for (const path of probes) expect(doc.paths[path].get.security).toEqual([]);
    const open = operations.filter((o) => o.op.security !== undefined).map((o) => o.path);
    expect(open.sort()).toEqual(probes);
    const health = jsonBody(doc.paths["/health"].get.responses["200"]);
    expect(health.required).toEqual(["status", "timestamp", "helm_version"]);
    expect(health.properties.status.enum).toEqual(["healthy", "degraded"]);
  });

  it("gives the REST Release the old operator's fields, status as Helm's lowercase strings", () => {
    const release = doc.components.schemas["rest.Release"];
    for (const f of [
      "name",
      "namespace",
      "revision",
      "status",
      "chart",
      "app_version",
      "updated",
      "description",
      "values",
      "chart_version",
      "notes",
      "chart_reference",
      "repo_url",
    ]) {
      expect(Object.keys(release.properties)).toContain(f);
    }
    expect(release.required).toEqual([
      "name",
      "namespace",
      "revision",
      "status",
      "chart",
      "app_version",
      "updated",
      "description",
      "values",
    ]);
    expect(release.properties.revision.type).toBe("integer");
    expect(release.properties.updated).toMatchObject({ type: ["string", "null"], format: "date-time" });
    expect(release.properties.values.type).toBe("object");
    const status = resolve(release.properties.status.$ref);
    expect(status.type).toBe("string");
    expect([...status.enum].sort()).toEqual(
      [
        "deployed",
        "failed",
        "pending-install",
        "pending-upgrade",
        "pending-rollback",
        "superseded",
        "uninstalling",
        "uninstalled",
        "unknown",
      ].sort(),
    );
    // The Connect Release keeps proto-JSON: lowerCamelCase, enum names, nothing required.
    const connect = doc.components.schemas["paas.v1.Release"];
    expect(Object.keys(connect.properties)).toContain("appVersion");
    expect(connect.required).toBeUndefined();
    expect(resolve(connect.properties.status.$ref).enum).toContain("RELEASE_STATUS_PENDING_INSTALL");
  });

  it("shapes REST bodies and statuses as the old operator did", () => {
    const op = (verb: string, path: string) => doc.paths[path][verb];
    const install = op("post", "/api/releases");
    expect(Object.keys(install.responses)[0]).toBe("201");
    expect(jsonBody(install.responses["201"])).toEqual({ $ref: "#/components/schemas/rest.Release" });
    const installBody = resolve(install.requestBody.content["application/json"].schema.$ref);
    expect(installBody.required).toEqual(["namespace", "name", "chart"]);
    expect(Object.keys(installBody.properties)).toEqual([
      "namespace",
      "name",
      "chart",
      "version",
      "values",
      "create_namespace",
      "repo_url",
      "wait",
      "timeout",
      "idempotency_key",
      "async",
    ]);
    expect(installBody.properties.timeout.type).toBe("number");

    const upgrade = op("patch", "/api/releases/{namespace}/{name}");
    const upgradeBody = upgrade.requestBody.content["application/json"].schema;
    expect(Object.keys(upgradeBody.properties)).toEqual([
      "chart",
      "version",
      "values",
      "reset_values",
      "reuse_values",
      "repo_url",
      "wait",
      "timeout",
      "idempotency_key",
      "async",
    ]);
    expect(jsonBody(upgrade.responses["200"])).toEqual({ $ref: "#/components/schemas/rest.Release" });
    expect(jsonBody(op("get", "/api/releases/{namespace}/{name}").responses["200"])).toEqual({
      $ref: "#/components/schemas/rest.Release",
    });

    expect(
      resolve(jsonBody(op("delete", "/api/releases/{namespace}/{name}").responses["200"]).$ref).properties,
    ).toHaveProperty("message");
    const rollback = op("post", "/api/releases/{namespace}/{name}/rollback");
    expect(Object.keys(rollback.requestBody.content["application/json"].schema.properties)).toEqual([
      "revision",
      "idempotency_key",
      "async",
    ]);
    expect(resolve(jsonBody(rollback.responses["200"]).$ref).properties).toHaveProperty("message");

    const revisions = resolve(jsonBody(op("get", "/api/releases/{namespace}/{name}/revisions").responses["200"]).$ref);
    const revision = resolve(revisions.properties.revisions.items.$ref);
    expect(Object.keys(revision.properties)).toEqual([
      "revision",
      "updated",
      "status",
      "chart",
      "app_version",
      "description",
    ]);

    const status = resolve(jsonBody(op("get", "/api/releases/{namespace}/{name}/status").responses["200"]).$ref);
    expect(Object.keys(status.properties)).toEqual(["release", "pods", "pod_retrieval_error"]);
    const pod = resolve(status.properties.pods.items.$ref);
    for (const f of ["name", "phase", "ready", "restarts", "age"]) expect(Object.keys(pod.properties)).toContain(f);

    const ns = op("post", "/api/namespaces");
    expect(Object.keys(ns.responses)[0]).toBe("201");
    expect(resolve(ns.requestBody.content["application/json"].schema.$ref)).toMatchObject({
      required: ["name"],
      properties: { name: {}, cpu_limit: {}, memory_limit: {}, storage_limit: {} },
    });
    expect(resolve(jsonBody(ns.responses["201"]).$ref).properties).toHaveProperty("message");

    for (const { method, path, op: o } of restOperations) {
      const success = Object.keys(o.responses).filter((s) => s.startsWith("2"));
      const created =
        (method === "post" && path === "/api/releases") || (method === "post" && path === "/api/namespaces");
      expect(success, `${method} ${path}`).toEqual([created ? "201" : "200"]);
    }
  });

  it("answers REST errors with {detail, error_type}", () => {
    const error = doc.components.schemas["rest.Error"];
    expect(error.required).toEqual(["detail", "error_type"]);
    expect(error.properties.detail.type).toBe("string");
    expect(error.properties.error_type.type).toBe("string");
    expect(restOperations.length).toBe(21);
    for (const { method, path, op } of restOperations) {
      const errors = Object.keys(op.responses).filter((s) => !s.startsWith("2"));
      for (const s of ["400", "401", "403", "404", "405", "422", "500", "503", "504"])
        expect(errors, `${method} ${path}`).toContain(s);
      if (op.requestBody) expect(errors).toContain("413");
      if (method !== "get") expect(errors).toContain("409");
      for (const s of errors) expect(jsonBody(op.responses[s])).toEqual({ $ref: "#/components/schemas/rest.Error" });
    }
  });

  it("writes 64-bit integers of the Connect schemas as strings", () => {
    const messages: DescMessage[] = [...file_paas_v1_release.messages, ...file_paas_v1_namespace.messages];
    const wide = new Set([
      ScalarType.INT64,
      ScalarType.UINT64,
      ScalarType.SINT64,
      ScalarType.FIXED64,
      ScalarType.SFIXED64,
    ]);
    const scalarOf = (f: DescField) =>
      f.fieldKind === "scalar" || (f.fieldKind === "list" && f.listKind === "scalar") ? f.scalar : undefined;
    for (const m of messages) {
      const schema = doc.components.schemas[m.typeName];
      if (schema === undefined) continue;
      for (const f of m.fields) {
        const prop = schema.properties[f.jsonName];
        expect(prop, `${m.typeName}.${f.jsonName}`).toBeDefined();
        const scalar = scalarOf(f);
        if (scalar !== undefined && wide.has(scalar)) expect((prop.items ?? prop).type).toBe("string");
        if (scalar === ScalarType.INT32) expect((prop.items ?? prop).type).toBe("integer");
      }
    }
  });

  it("takes descriptions from the proto comments", () => {
    expect(doc.paths["/api/releases/{namespace}/{name}"].patch.summary).toBe(
      "UpgradeRelease upgrades a release; without a chart it reuses the reference recorded at install.",
    );
    expect(doc.components.schemas["rest.PodStatus"].properties.ready.description).toBe(
      'Ready containers over all containers, e.g. "1/1".',
    );
    expect(doc.components.schemas["paas.v1.WatchEventKind"].description).toContain(
      "`WATCH_EVENT_KIND_SNAPSHOT`: The first message",
    );
  });
});
