import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { DEFAULT_VALUES_LIMITS } from "../../src/domain/validation.ts";

describe("VALUES_MAX_BYTES, VALUES_MAX_DEPTH, VALUES_MAX_KEYS", () => {
  const KEY = "k".repeat(32);
  it("default and parse", () => {
    expect(loadConfig({ API_KEY: KEY }).valuesLimits).toEqual(DEFAULT_VALUES_LIMITS);
    expect(
      loadConfig({ API_KEY: KEY, VALUES_MAX_BYTES: "4096", VALUES_MAX_DEPTH: "8", VALUES_MAX_KEYS: "100" })
        .valuesLimits,
    ).toEqual({ maxBytes: 4096, maxDepth: 8, maxKeys: 100 });
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
