import { describe, expect, it } from "vitest";
import { isLabelValue } from "../../../src/domain/names.ts";
import {
  chartLabels,
  chartSourceFromLabels,
  digestFromLabels,
  resolvedChartLabels,
} from "../../../src/helm/chart-labels.ts";

const DIGEST = "sha256:568c7b2c06cfbe8ea5aa0cc6b7530e321e1b4c04bb993731e9be09c1d793707e";

describe("chart labels", () => {
  it("round-trip the reference and repository, every value a valid label value", () => {
    const source = { ref: "oci://registry.example.com:5000/charts/team-a/podinfo", repoUrl: "" };
    const labels = chartLabels(source);
    for (const v of Object.values(labels)) expect(isLabelValue(v), v).toBe(true);
    expect(chartSourceFromLabels(labels)).toEqual({ ref: source.ref });
    expect(chartSourceFromLabels(chartLabels({ ref: "podinfo", repoUrl: "http://charts.example/stable" }))).toEqual({
      ref: "podinfo",
      repoUrl: "http://charts.example/stable",
    });
  });

  it("record the OCI digest in two halves under keys naming the algorithm, and read it back", () => {
    const labels = resolvedChartLabels({ version: "6.14.1", digest: DIGEST });
    expect(labels).toEqual({
      "paas-chart-version": "6.14.1",
      "paas-chart-sha256-0": "568c7b2c06cfbe8ea5aa0cc6b7530e32",
      "paas-chart-sha256-1": "1e1b4c04bb993731e9be09c1d793707e",
    });
    for (const v of Object.values(labels)) expect(isLabelValue(v), v).toBe(true);
    expect(digestFromLabels(labels)).toBe(DIGEST);
    expect(labels["paas-chart-version"]).toBe("6.14.1");
  });

  it("write empty values when there is nothing to record, so that an upgrade overwrites a stale digest", () => {
    // Helm merges an upgrade's labels into the previous revision's.
    const installed = {
      ...chartLabels({ ref: "oci://r/charts/podinfo" }),
      ...resolvedChartLabels({ version: "6.13.0", digest: DIGEST }),
    };
    const upgrade = {
      ...chartLabels({ ref: "podinfo", repoUrl: "http://charts.example/" }),
      ...resolvedChartLabels({ version: "6.14.1" }),
    };
    const merged = { ...installed, ...upgrade };
    expect(digestFromLabels(merged)).toBeUndefined();
    expect(merged["paas-chart-version"]).toBe("6.14.1");
    expect(chartSourceFromLabels(merged)).toEqual({ ref: "podinfo", repoUrl: "http://charts.example/" });
  });

  it("record SemVer build metadata with '_' (as OCI tags do) and skip a version that is no label value", () => {
    const labels = resolvedChartLabels({ version: "1.2.3-rc.1+build.5" });
    expect(labels["paas-chart-version"]).toBe("1.2.3-rc.1_build.5");
    expect(resolvedChartLabels({ version: `1.0.0-${"a".repeat(60)}` })["paas-chart-version"]).toBe("");
    expect(resolvedChartLabels({ version: "1.0.0 beta" })["paas-chart-version"]).toBe("");
  });

  it("record nor read back anything that is not sha256 and 64 lowercase hex digits", () => {
    for (const digest of [
      "sha512:" + "a".repeat(128),
      "sha256:" + "A".repeat(64),
      "sha256:" + "a".repeat(63),
      "a".repeat(64),
      "",
    ]) {
      const labels = resolvedChartLabels({ version: "1.0.0", digest });
      expect(labels["paas-chart-sha256-0"], digest).toBe("");
      expect(labels["paas-chart-sha256-1"], digest).toBe("");
    }
    expect(digestFromLabels({})).toBeUndefined();
    expect(digestFromLabels({ "paas-chart-sha256-0": "a".repeat(32) })).toBeUndefined();
    expect(
      digestFromLabels({ "paas-chart-sha256-0": "g".repeat(32), "paas-chart-sha256-1": "a".repeat(32) }),
    ).toBeUndefined();
  });
});

describe("chart labels of long and merged references", () => {
  it("round-trip long references as valid label values", () => {
    const source = { ref: `oci://registry.example.test:5000/${"deep/".repeat(20)}chart`, repoUrl: "" };
    const labels = chartLabels(source);
    for (const [k, v] of Object.entries(labels)) {
      expect(k.length).toBeLessThanOrEqual(63);
      expect(v).toMatch(/^([0-9a-f]{1,63})?$/);
    }
    expect(chartSourceFromLabels(labels)).toEqual({ ref: source.ref });
  });

  it("a shorter reference recorded later wins over a longer earlier one (labels merge)", () => {
    const long = chartLabels({ ref: `oci://r.example/${"x".repeat(100)}` });
    const short = chartLabels({ ref: "podinfo", repoUrl: "http://127.0.0.1:8879" });
    const merged = { ...long, ...short };
    expect(chartSourceFromLabels(merged)).toEqual({ ref: "podinfo", repoUrl: "http://127.0.0.1:8879" });
  });

  it("is undefined for releases installed elsewhere", () => {
    expect(chartSourceFromLabels({ owner: "helm", name: "x" })).toBeUndefined();
  });
});
