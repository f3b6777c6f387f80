import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.ts";

// POD_SECURITY_LEVEL: the Pod Security Standard CreateNamespace enforces.
describe("POD_SECURITY_LEVEL", () => {
  const base = { API_KEY: "k".repeat(32) };

  it("defaults to restricted and accepts baseline", () => {
    expect(loadConfig(base).podSecurityLevel).toBe("restricted");
    expect(loadConfig({ ...base, POD_SECURITY_LEVEL: "Baseline" }).podSecurityLevel).toBe("baseline");
    expect(loadConfig({ ...base, POD_SECURITY_LEVEL: "restricted" }).podSecurityLevel).toBe("restricted");
  });

  it("refuses privileged and anything else", () => {
    for (const bad of ["privileged", "none", "strict"]) {
      expect(() => loadConfig({ ...base, POD_SECURITY_LEVEL: bad })).toThrow(ConfigError);
    }
  });
});
