import { readFileSync } from "node:fs";
import { create, ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { DEFAULT_DOCUMENT_PATH } from "../../../src/docs/docs-routes.ts";
import type { HealthMonitor, HealthSnapshot } from "../../../src/health/health-monitor.ts";
import { createHttpRoutes } from "../../../src/server/http-routes.ts";
import type { Lifecycle } from "../../../src/operations/lifecycle.ts";
import { errorBodyOf } from "../../../src/rest/rest-errors.ts";
import { buildRoutes } from "../../../src/rest/routes.ts";

// The document's REST contract (scripts/openapi/rest-contract.ts) against what the REST layer
// (src/rest/) and the probes (src/server/http-routes.ts) really serve: routes, statuses, required body
// fields, and the JSON they render.

type Obj = Record<string, any>;
const doc = JSON.parse(readFileSync(DEFAULT_DOCUMENT_PATH, "utf8")) as Obj;
const routes = buildRoutes();

function resolve(schema: Obj): Obj {
  if (schema.$ref === undefined) return schema;
  return resolve(
    schema.$ref
      .slice(2)
      .split("/")
      .reduce((node: Obj, part: string) => node[part], doc),
  );
}

function isType(value: unknown, type: string): boolean {
  switch (type) {
    case "null":
      return value === null;
    case "integer":
      return Number.isInteger(value);
    case "array":
      return Array.isArray(value);
    case "object":
      return value !== null && typeof value === "object" && !Array.isArray(value);
    default:
      return typeof value === type;
  }
}

/**
 * check validates JSON against the subset of JSON Schema the document uses, strictly: an object
 * may have only the properties its schema lists, so a renamed or added field shows.
 */
function check(value: unknown, schemaOrRef: Obj, where: string): string[] {
  const schema = resolve(schemaOrRef);
  if (schema.anyOf)
    return schema.anyOf.some((s: Obj) => check(value, s, where).length === 0)
      ? []
      : [`${where}: ${JSON.stringify(value)} matches no anyOf branch`];
  const errors: string[] = [];
  if (schema.type !== undefined && ![schema.type].flat().some((t: string) => isType(value, t)))
    return [`${where}: ${JSON.stringify(value)} is not ${schema.type}`];
  if (schema.enum && !schema.enum.includes(value))
    errors.push(`${where}: ${JSON.stringify(value)} not in ${schema.enum}`);
  if (schema.const !== undefined && value !== schema.const)
    errors.push(`${where}: ${JSON.stringify(value)} is not ${schema.const}`);
  if (schema.format === "date-time" && typeof value === "string" && Number.isNaN(Date.parse(value)))
    errors.push(`${where}: ${value} is no date-time`);
  if (isType(value, "object") && schema.properties) {
    const v = value as Obj;
    for (const r of schema.required ?? []) if (!(r in v)) errors.push(`${where}: missing ${r}`);
    for (const [k, sub] of Object.entries(v)) {
      if (k in schema.properties) errors.push(...check(sub, schema.properties[k], `${where}.${k}`));
      else if (schema.additionalProperties !== true) errors.push(`${where}: ${k} is not in the document`);
    }
  }
  if (Array.isArray(value) && schema.items)
    value.forEach((item, i) => errors.push(...check(item, schema.items, `${where}[${i}]`)));
  return errors;
}

/** filled is a message with every field set, nested messages too (two levels deep). */
function filled(desc: DescMessage, depth = 0): Obj {
  const init: Obj = {};
  for (const f of desc.fields) {
    const one = oneValue(f, depth);
    if (one === undefined) continue;
    init[f.localName] = f.fieldKind === "list" ? [one, one] : one;
  }
  return create(desc, init);
}

function oneValue(f: DescField, depth: number): unknown {
  const kind = f.fieldKind === "list" ? f.listKind : f.fieldKind;
  if (kind === "map") return undefined;
  if (kind === "enum") return f.enum!.values[2]?.number ?? 1;
  if (kind === "scalar") {
    const scalar = f.scalar!;
    if (scalar === ScalarType.STRING) return `${f.name}-x`;
    if (scalar === ScalarType.BOOL) return true;
    return 3;
  }
  const message = f.message!;
  if (message.typeName === "google.protobuf.Timestamp") return timestampFromDate(new Date("2025-01-02T03:04:05Z"));
  if (message.typeName === "google.protobuf.Duration") return durationFromMs(300_000);
  if (message.typeName === "google.protobuf.Struct")
    return { fields: { replicaCount: { kind: { case: "numberValue", value: 2 } } } };
  return depth < 2 ? filled(message, depth + 1) : undefined;
}

describe("the REST layer and the document", () => {
  const op = (verb: string, template: string): Obj =>
    doc.paths[template.replace(/=[^}]*\}/g, "}")]?.[verb.toLowerCase()];

  it("list the same operations", () => {
    const served = routes.map((r) => `${r.verb} ${r.template}`).sort();
    const documented = Object.entries(doc.paths as Obj)
      .filter(([path]) => path.startsWith("/api/") || path.startsWith("/ops/"))
      .flatMap(([path, item]) => Object.keys(item as Obj).map((verb) => `${verb.toUpperCase()} ${path}`))
      .sort();
    expect(served).toEqual(documented);
  });

  for (const route of routes) {
    describe(`${route.verb} ${route.template}`, () => {
      it("has the documented success status and body fields", () => {
        const o = op(route.verb, route.template);
        expect(Object.keys(o.responses).filter((s) => s.startsWith("2"))).toEqual([String(route.status)]);
        if (!route.hasBody) {
          expect(o.requestBody).toBeUndefined();
          return;
        }
        const body = resolve(o.requestBody.content["application/json"].schema);
        expect(Object.keys(body.properties)).toEqual(route.bodyFields.map((f) => f.name));
        expect(body.required ?? []).toEqual([...route.required]);
      });

      it("reads the documented query parameters, by proto name", () => {
        const documented = (op(route.verb, route.template).parameters ?? [])
          .filter((p: Obj) => p.in === "query")
          .map((p: Obj) => p.name);
        const served = [...new Set(route.queryFields.values())].map((f) => f.name);
        expect(served).toEqual(documented);
        for (const f of route.queryFields.values()) expect(route.queryFields.get(f.jsonName)).toBe(f);
      });

      it("renders full and empty responses as documented", () => {
        const schema = op(route.verb, route.template).responses[String(route.status)].content["application/json"]
          .schema;
        for (const message of [filled(route.method.output), create(route.method.output)]) {
          const json = route.response(message as never);
          // An empty release renders as null, which a route that answers with the bare release never does:
          // the RPC answers NOT_FOUND instead.
          if (json === null) continue;
          expect(check(json, schema, "response")).toEqual([]);
        }
      });
    });
  }

  it("renders errors as documented", () => {
    for (const code of [Code.InvalidArgument, Code.NotFound, Code.Unavailable]) {
      const { status, body } = errorBodyOf(new ConnectError("nope", code), false, "req-1");
      expect(check(body, { $ref: "#/components/schemas/rest.Error" }, "error")).toEqual([]);
      expect(Object.keys(doc.components.responses)).toContain(`rest.Error${status}`);
    }
  });

  it("renders the probes as documented, serving and not", () => {
    for (const snapshot of [
      { serving: true, helmVersion: "v4.3.1", checkedAt: new Date() },
      { serving: false, helmVersion: "", helmError: "missing", kubeError: "refused", checkedAt: new Date() },
    ] satisfies HealthSnapshot[]) {
      for (const draining of [false, true]) {
        const monitor = { current: () => snapshot } as unknown as HealthMonitor;
        const routes = createHttpRoutes(monitor, { draining } as Lifecycle);
        for (const path of ["/health", "/healthz", "/readyz", "/health/live", "/health/ready"]) {
          let text = "";
          const res = { statusCode: 0, setHeader: () => undefined, end: (t: string) => (text = t) };
          routes({ url: path, method: "GET" } as never, res as never);
          const response = doc.paths[path].get.responses[String(res.statusCode)];
          expect(response, `${path} ${res.statusCode}`).toBeDefined();
          expect(check(JSON.parse(text), response.content["application/json"].schema, path)).toEqual([]);
        }
      }
    }
  });
});
