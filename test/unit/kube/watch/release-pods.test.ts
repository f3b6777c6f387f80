import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { isReleasePod } from "../../../../src/kube/watch/release-pods.ts";
import { matchesAny, podMatchersFromManifest } from "../../../../src/kube/watch/workload-pods.ts";

// `helm template web podinfo --version 6.13.0` from the testbed's chart repository.
const podinfoManifest = readFileSync(
  new URL("../../../fixtures/kube/podinfo-6.13.0-manifest.yaml", import.meta.url),
  "utf8",
);

describe("isReleasePod", () => {
  const p = (labels: Record<string, string>, name = "p") => ({ metadata: { name, labels } });
  it("accepts the instance label, the legacy release label, and workload selectors", () => {
    expect(isReleasePod(p({ "app.kubernetes.io/instance": "web" }), "web")).toBe(true);
    expect(isReleasePod(p({ release: "web" }), "web")).toBe(true);
    // An instance label names the pod's release: release=web does not make it web's.
    expect(isReleasePod(p({ "app.kubernetes.io/instance": "api", release: "web" }), "web")).toBe(false);
    expect(isReleasePod(p({ "app.kubernetes.io/name": "web-podinfo" }), "web")).toBe(false);
    const matchers = podMatchersFromManifest(podinfoManifest);
    expect(
      isReleasePod(p({ "app.kubernetes.io/name": "web-podinfo", "pod-template-hash": "x" }), "web", matchers),
    ).toBe(true);
    expect(matchesAny([{ podName: "lonely" }], "lonely", {})).toBe(true);
  });
});
