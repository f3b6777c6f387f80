import { describe, expect, it } from "vitest";
import { PaasError } from "../../../src/errors.ts";
import { validateNamespace, validateQuantity, validateReleaseName } from "../../../src/domain/validation.ts";

function kindOf(fn: () => unknown): string {
  try {
    fn();
    return "ok";
  } catch (err) {
    return err instanceof PaasError ? err.kind : "other";
  }
}

describe("validators", () => {
  it("namespaces: inside the prefix, DNS-1123, longer than the prefix", () => {
    expect(kindOf(() => validateNamespace("paas-ws-a", "paas-ws-"))).toBe("ok");
    expect(kindOf(() => validateNamespace("kube-system", "paas-ws-"))).toBe("permission_denied");
    expect(kindOf(() => validateNamespace("paas-ws-", "paas-ws-"))).toBe("invalid_argument");
    expect(kindOf(() => validateNamespace("paas-ws-A", "paas-ws-"))).toBe("invalid_argument");
    expect(kindOf(() => validateNamespace(`paas-ws-${"x".repeat(56)}`, "paas-ws-"))).toBe("invalid_argument");
  });

  it("release names follow Helm's rule", () => {
    expect(kindOf(() => validateReleaseName("my-app.v2"))).toBe("ok");
    expect(kindOf(() => validateReleaseName("a".repeat(53)))).toBe("ok");
    expect(kindOf(() => validateReleaseName("a".repeat(54)))).toBe("invalid_argument");
    expect(kindOf(() => validateReleaseName("a_b"))).toBe("invalid_argument");
  });

  it("quantities", () => {
    for (const ok of ["2", "500m", "4Gi", "0.5", "1e3", "+1"])
      expect(kindOf(() => validateQuantity(ok, "f"))).toBe("ok");
    for (const bad of ["", "0", "-1", "4GB", "1.2.3", "Gi", "1 Gi"])
      expect(kindOf(() => validateQuantity(bad, "f"))).toBe("invalid_argument");
  });
});
