import { describe, expect, it } from "vitest";
import { PaasError } from "../../../src/errors.ts";
import type { JsonValue } from "../../../src/domain/release.ts";
import { DEFAULT_VALUES_LIMITS, validateValues } from "../../../src/domain/validation.ts";
import { manyKeys, nested } from "../../support/values.ts";

function kindOf(fn: () => unknown): string {
  try {
    fn();
    return "ok";
  } catch (err) {
    return err instanceof PaasError ? err.kind : "other";
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
    expect(kindOf(() => validateValues(nested(3), { maxBytes: 1e6, maxDepth: 2, maxKeys: 100 }))).toBe(
      "invalid_argument",
    );
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
