import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { loadConfig, ConfigError } from "../../../src/config.ts";
import { PaasError } from "../../../src/errors.ts";
import type { JsonObject, JsonValue } from "../../../src/domain/release.ts";
import { DEFAULT_VALUES_LIMITS, validateValues } from "../../../src/domain/validation.ts";
import { createHarness, managedNamespace } from "../../support/harness.ts";

const NS = "paas-ws-acme";

function kindOf(fn: () => unknown): string {
  try {
    fn();
    return "ok";
  } catch (err) {
    return err instanceof PaasError ? err.kind : "other";
  }
}

/** nested returns {a: {a: … {a: 1}}} with `depth` objects. */
function nested(depth: number): JsonObject {
  let v: JsonValue = 1;
  for (let i = 0; i < depth; i++) v = { a: v };
  return v as JsonObject;
}

function manyKeys(n: number): JsonObject {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
}

async function codeOf(p: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await p;
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

describe("validateValues", () => {
  it("defaults: 256 KiB, depth 32, 10 000 keys", () => {
    expect(DEFAULT_VALUES_LIMITS).toEqual({ maxBytes: 262144, maxDepth: 32, maxKeys: 10000 });
  });

  it("accepts values at the limits", () => {
    expect(kindOf(() => validateValues(nested(32)))).toBe("ok");
    expect(kindOf(() => validateValues(manyKeys(10_000)))).toBe("ok");
    const big = { s: "x".repeat(262144 - '{"s":""}'.length) };
    expect(kindOf(() => validateValues(big))).toBe("ok");
    expect(kindOf(() => validateValues(undefined))).toBe("ok");
    expect(kindOf(() => validateValues({}))).toBe("ok");
  });

  it("depth beyond the limit is INVALID_ARGUMENT; arrays count as levels", () => {
    expect(kindOf(() => validateValues(nested(33)))).toBe("invalid_argument");
    let v: JsonValue = 1;
    for (let i = 0; i < 40; i++) v = [v];
    expect(kindOf(() => validateValues({ list: v }))).toBe("invalid_argument");
    expect(kindOf(() => validateValues(nested(3), { maxBytes: 1e6, maxDepth: 2, maxKeys: 100 }))).toBe("invalid_argument");
  });

  it("too many keys (counted over the whole tree) is RESOURCE_EXHAUSTED", () => {
    expect(kindOf(() => validateValues(manyKeys(10_001)))).toBe("resource_exhausted");
    const spread = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`g${i}`, manyKeys(99)]));
    expect(kindOf(() => validateValues(spread))).toBe("resource_exhausted"); // 101 + 101 × 99 = 10 100 keys
  });

  it("too large serialized is RESOURCE_EXHAUSTED, counting UTF-8 bytes", () => {
    expect(kindOf(() => validateValues({ s: "x".repeat(262144) }))).toBe("resource_exhausted");
    // 100 000 characters, 300 000 bytes.
    expect(kindOf(() => validateValues({ s: "€".repeat(100_000) }))).toBe("resource_exhausted");
  });

  it("a deep tree does not overflow the stack", () => {
    expect(kindOf(() => validateValues(nested(100_000)))).toBe("invalid_argument");
  });

  it("keys with , = \\ . and [ ] pass untouched", () => {
    expect(kindOf(() => validateValues({ "a.b,c=d\\e": { "x[0]": "y,z=w" } }))).toBe("ok");
  });
});

describe("values limits on the request path", () => {
  it("refuses oversize, too deep and too many-keyed values before any helm call", async () => {
    const h = await createHarness({ valuesLimits: { maxBytes: 2048, maxDepth: 4, maxKeys: 50 } });
    managedNamespace(h.cluster, NS);
    const install = (values: JsonObject) => codeOf(h.releases.installRelease({ namespace: NS, name: "web", chart: "oci://r.example/c/nginx", values }));
    expect(await install({ s: "x".repeat(3000) })).toBe(Code.ResourceExhausted);
    expect(await install(manyKeys(51))).toBe(Code.ResourceExhausted);
    expect(await install(nested(5))).toBe(Code.InvalidArgument);
    expect(h.helm.verbs()).toEqual(["version"]);
    expect(h.kube.calls.filter((c) => c !== "ping")).toEqual([]);
    // Within the limits it installs; then the same limits guard upgrades.
    expect(await install(nested(4))).toBe("ok");
    const upgrade = (values: JsonObject) => codeOf(h.releases.upgradeRelease({ namespace: NS, name: "web", values }));
    expect(await upgrade({ s: "x".repeat(3000) })).toBe(Code.ResourceExhausted);
    expect(await upgrade(nested(5))).toBe(Code.InvalidArgument);
    expect(h.helm.verbs()).toEqual(["version", "install"]);
  });

  it("applies the defaults when none are configured", async () => {
    const h = await createHarness();
    managedNamespace(h.cluster, NS);
    const err = await h.releases.installRelease({ namespace: NS, name: "web", chart: "oci://r.example/c/nginx", values: manyKeys(10_001) }).catch((e) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((err as ConnectError).rawMessage).toBe("values have more than 10000 keys");
    expect(h.helm.verbs()).toEqual(["version"]);
  });

  it("passes keys full of , = \\ . literally to helm (as data, not --set)", async () => {
    const h = await createHarness();
    managedNamespace(h.cluster, NS);
    const values = { podAnnotations: { "a.b,c=d\\e": "x,y=z\\w.v" }, "top.level,key=1\\2": [1, "two"] };
    await h.releases.installRelease({ namespace: NS, name: "web", chart: "oci://r.example/c/nginx", values });
    expect(h.helm.calls.find((c) => c.verb === "install")!.args).toMatchObject({ values });
    expect((await h.releases.getRelease({ namespace: NS, name: "web" })).release?.values).toEqual(values);
  });
});

describe("VALUES_MAX_BYTES, VALUES_MAX_DEPTH, VALUES_MAX_KEYS", () => {
  const KEY = "k".repeat(32);
  it("default and parse", () => {
    expect(loadConfig({ API_KEY: KEY }).valuesLimits).toEqual(DEFAULT_VALUES_LIMITS);
    expect(loadConfig({ API_KEY: KEY, VALUES_MAX_BYTES: "4096", VALUES_MAX_DEPTH: "8", VALUES_MAX_KEYS: "100" }).valuesLimits).toEqual({ maxBytes: 4096, maxDepth: 8, maxKeys: 100 });
  });

  it.each([
    ["VALUES_MAX_BYTES", "12k"],
    ["VALUES_MAX_BYTES", "10"],
    ["VALUES_MAX_DEPTH", "1"],
    ["VALUES_MAX_DEPTH", "-3"],
    ["VALUES_MAX_KEYS", "0"],
  ])("refuses %s=%s", (name, value) => {
    expect(() => loadConfig({ API_KEY: KEY, [name]: value })).toThrow(ConfigError);
  });
});
