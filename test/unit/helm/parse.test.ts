import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { PaasError } from "../../../src/errors.ts";
import { parseJsonOutput } from "../../../src/helm/parse-json.ts";
import { parseMetadata, parseRelease, parseVersion, withMetadata } from "../../../src/helm/parse.ts";
import { parseHistory, parseList, splitChart } from "../../../src/helm/parse-list.ts";

// Real outputs recorded from helm v3.22.0 and v4.3.1 by test/fixtures/helm/record.sh.
const read = (major: 3 | 4, file: string) =>
  readFileSync(resolve(import.meta.dirname, `../../fixtures/helm/v${major}/${file}`), "utf8");

describe.each([3, 4] as const)("parsers on recorded helm v%i output", (major) => {
  it("install -o json: the new release with chart metadata, user values and notes", () => {
    const r = parseRelease(read(major, "install.json"));
    expect(r).toMatchObject({
      name: "web",
      namespace: `paas-fixtures-v${major}`,
      revision: 1,
      status: "deployed",
      chart: "podinfo",
      chartVersion: "6.13.0",
      appVersion: "6.13.0",
      description: "Install complete",
      values: { replicaCount: 1, ui: { message: "hello from v1" } },
    });
    expect(r.notes).toContain("podinfo");
    expect(r.updated).toBeInstanceOf(Date);
    expect(r.updated?.getUTCFullYear()).toBeGreaterThan(2024);
  });

  it("install of an oci:// chart: JSON after helm's Pulled/Digest lines", () => {
    expect(parseRelease(read(major, "install-oci.json"))).toMatchObject({
      name: "oci-web",
      chart: "podinfo",
      chartVersion: "6.13.0",
      status: "deployed",
    });
  });

  it("upgrade -o json with --reset-then-reuse-values merges old and new user values", () => {
    expect(parseRelease(read(major, "upgrade.json"))).toMatchObject({
      revision: 2,
      status: "deployed",
      chartVersion: "6.14.1",
      description: "Upgrade complete",
      values: { replicaCount: 1, ui: { message: "hello from v2" } },
    });
  });

  it("status -o json has no chart; get metadata completes it", () => {
    const status = parseRelease(read(major, "status.json"));
    expect(status).toMatchObject({ name: "web", revision: 2, status: "deployed", chart: "", chartVersion: "" });
    expect(status.values).toEqual({ replicaCount: 1, ui: { message: "hello from v2" } });
    const meta = parseMetadata(read(major, "metadata.json"));
    expect(meta).toEqual({
      name: "web",
      namespace: `paas-fixtures-v${major}`,
      revision: 2,
      chart: "podinfo",
      chartVersion: "6.14.1",
      appVersion: "6.14.1",
    });
    expect(withMetadata(status, meta)).toMatchObject({
      chart: "podinfo",
      chartVersion: "6.14.1",
      appVersion: "6.14.1",
      notes: status.notes,
    });
  });

  it("history -o json, oldest first", () => {
    const h = parseHistory(read(major, "history.json"));
    expect(
      h.map(({ revision, status, chart, appVersion, description }) => ({
        revision,
        status,
        chart,
        appVersion,
        description,
      })),
    ).toEqual([
      {
        revision: 1,
        status: "superseded",
        chart: "podinfo-6.13.0",
        appVersion: "6.13.0",
        description: "Install complete",
      },
      {
        revision: 2,
        status: "deployed",
        chart: "podinfo-6.14.1",
        appVersion: "6.14.1",
        description: "Upgrade complete",
      },
    ]);
    expect(h[0]?.updated).toBeInstanceOf(Date);
  });

  it("history of a release whose install timed out and whose upgrade was cancelled", () => {
    const h = parseHistory(read(major, "history-cancelled.json"));
    expect(h.map((r) => r.status)).toEqual(["failed", "failed"]);
    expect(h[1]?.description).toBe('Upgrade "stuck" failed: context canceled');
  });

  it("list -o json with --time-format: chart split into name and version", () => {
    const list = parseList(read(major, "list.json"));
    expect(list.map((r) => [r.name, r.revision, r.status, r.chart, r.chartVersion])).toEqual([
      ["oci-web", 1, "deployed", "podinfo", "6.13.0"],
      ["web", 2, "deployed", "podinfo", "6.14.1"],
    ]);
    expect(list[0]?.updated).toBeInstanceOf(Date);
    expect(list[0]?.namespace).toBe(`paas-fixtures-v${major}`);
  });

  it("version --template", () => {
    expect(parseVersion(read(major, "version.txt")).major).toBe(major);
  });
});

describe("parser edge cases", () => {
  it("splitChart finds the SemVer suffix even with hyphens and digits in names", () => {
    expect(splitChart("podinfo-6.13.0")).toEqual({ name: "podinfo", version: "6.13.0" });
    expect(splitChart("my-app-2-1.0.0-rc.1+build.5")).toEqual({ name: "my-app-2", version: "1.0.0-rc.1+build.5" });
    expect(splitChart("nginx-ingress-controller-12.0.9")).toEqual({
      name: "nginx-ingress-controller",
      version: "12.0.9",
    });
    expect(splitChart("weird")).toEqual({ name: "weird", version: "" });
  });

  it("v3 empty dates and Go zero times become undefined; unknown statuses become unknown", () => {
    const r = parseRelease(JSON.stringify({ name: "a", version: 3, info: { last_deployed: "", status: "exploded" } }));
    expect(r).toMatchObject({ revision: 3, status: "unknown", values: {}, notes: "", chart: "" });
    expect(r.updated).toBeUndefined();
    expect(
      parseHistory('[{"revision":1,"updated":"0001-01-01T00:00:00Z","status":"deployed"}]')[0]?.updated,
    ).toBeUndefined();
    expect(parseHistory("[]")).toEqual([]);
    expect(parseList("[]")).toEqual([]);
  });

  it("skips non-JSON lines before the document and rejects garbage without echoing it", () => {
    expect(parseJsonOutput('Release "x" has been cancelled.\n{"a":1}\n')).toEqual({ a: 1 });
    expect(parseJsonOutput("Pulled: r/charts/p:1\nDigest: sha256:00\n[1]")).toEqual([1]);
    try {
      parseJsonOutput("password: hunter2");
      throw new Error("expected a failure");
    } catch (err) {
      expect(err).toBeInstanceOf(PaasError);
      expect((err as PaasError).message).not.toContain("hunter2");
    }
    expect(() => parseRelease("{}")).toThrow(PaasError);
    expect(() => parseHistory("{}")).toThrow(PaasError);
  });

  it("version strings", () => {
    expect(parseVersion("v4.3.1")).toEqual({ version: "v4.3.1", major: 4 });
    expect(parseVersion("v3.22.0+g1234567\n")).toEqual({ version: "v3.22.0", major: 3 });
    expect(() => parseVersion("v2.17.0")).toThrow(PaasError);
    expect(() => parseVersion("")).toThrow(PaasError);
  });
});
