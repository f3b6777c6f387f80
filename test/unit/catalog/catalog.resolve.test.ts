import { describe, expect, it } from "vitest";
import { ChartCatalog } from "../../../src/catalog/catalog.ts";
import { PaasError } from "../../../src/errors.ts";

// ChartCatalog.resolve without a configured catalogue: what is well-formed, checked without
// touching the network or the file system.

function kindOf(fn: () => unknown): string {
  try {
    fn();
    return "ok";
  } catch (err) {
    return err instanceof PaasError ? err.kind : "other";
  }
}

const allowAll = ChartCatalog.allowAll({});

describe("chart references", () => {
  it("chart sources never reach the file system or foreign schemes", () => {
    expect(allowAll.resolve("oci://127.0.0.1:5000/charts/podinfo", "6.13.0", "")).toEqual({
      ref: "oci://127.0.0.1:5000/charts/podinfo",
      version: "6.13.0",
    });
    expect(allowAll.resolve("podinfo", ">=6.0.0 <7", "http://127.0.0.1:8879/")).toEqual({
      ref: "podinfo",
      version: ">=6.0.0 <7",
      repoUrl: "http://127.0.0.1:8879/",
    });
    for (const bad of [
      "file:///etc/passwd",
      "/etc/passwd",
      "./x",
      "../x",
      "~/x",
      "C:\\x",
      "a/b/c",
      "oci://",
      "oci://h/c?x=1",
      "oci://h/c#f",
      "https://h/c.tgz",
    ]) {
      expect(kindOf(() => allowAll.resolve(bad, "", ""))).toBe("invalid_argument");
    }
    expect(kindOf(() => allowAll.resolve("podinfo", "", "http://h/a/../b"))).toBe("invalid_argument");
    expect(kindOf(() => allowAll.resolve("podinfo", "", "https://h/\n"))).toBe("invalid_argument");
  });
});
