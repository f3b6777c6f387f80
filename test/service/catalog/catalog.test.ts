import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ChartCatalog } from "../../../src/catalog/catalog.ts";
import type { InstallOptions } from "../../../src/helm/helm-client.ts";
import { createHarness, managedNamespace } from "../../support/harness.ts";
import { failure } from "../../support/failure.ts";

// The chart catalogue on the real request path (createApp over fake adapters): refused
// references answer INVALID_ARGUMENT or PERMISSION_DENIED and never reach helm.

const NS = "paas-ws-acme";

async function setup(
  catalog = new ChartCatalog(
    [{ url: "oci://registry.example.com/charts" }, { url: "https://charts.example.com/stable" }],
    { stable: "https://charts.example.com/stable" },
  ),
) {
  const h = await createHarness({ catalog });
  managedNamespace(h.cluster, NS);
  return h;
}

describe("InstallRelease against the chart catalogue", () => {
  it("installs from catalogue sources", async () => {
    const h = await setup();
    await h.releases.installRelease({
      namespace: NS,
      name: "a",
      chart: "oci://registry.example.com/charts/podinfo",
      version: "6.13.0",
    });
    await h.releases.installRelease({
      namespace: NS,
      name: "b",
      chart: "podinfo",
      repoUrl: "https://charts.example.com/stable/",
    });
    await h.releases.installRelease({ namespace: NS, name: "c", chart: "stable/podinfo" });
    const charts = h.helm.calls.filter((c) => c.verb === "install").map((c) => (c.args as InstallOptions).chart);
    expect(charts).toEqual([
      { ref: "oci://registry.example.com/charts/podinfo", version: "6.13.0" },
      { ref: "podinfo", repoUrl: "https://charts.example.com/stable/" },
      { ref: "podinfo", repoUrl: "https://charts.example.com/stable" },
    ]);
  });

  const refused: Array<[string, { chart: string; repoUrl?: string }, Code]> = [
    [
      "an OCI registry outside the catalogue",
      { chart: "oci://evil.example.com/charts/podinfo" },
      Code.PermissionDenied,
    ],
    [
      "a sibling path of a catalogue entry",
      { chart: "oci://registry.example.com/charts-x/podinfo" },
      Code.PermissionDenied,
    ],
    [
      "a repository outside the catalogue",
      { chart: "podinfo", repoUrl: "https://evil.example.com/stable" },
      Code.PermissionDenied,
    ],
    ["another port", { chart: "podinfo", repoUrl: "https://charts.example.com:8443/stable" }, Code.PermissionDenied],
    [
      "the link-local metadata address",
      { chart: "podinfo", repoUrl: "http://169.254.169.254/latest" },
      Code.PermissionDenied,
    ],
    ["an IPv4-mapped link-local address", { chart: "oci://[::ffff:169.254.169.254]/charts/x" }, Code.PermissionDenied],
    [
      "metadata.google.internal",
      { chart: "podinfo", repoUrl: "http://metadata.google.internal/computeMetadata/v1" },
      Code.PermissionDenied,
    ],
    ["a local path", { chart: "/etc/passwd" }, Code.InvalidArgument],
    ["file://", { chart: "file:///etc/passwd" }, Code.InvalidArgument],
    ["file:// as repo_url", { chart: "podinfo", repoUrl: "file:///srv" }, Code.InvalidArgument],
    ["encoded dots", { chart: "podinfo", repoUrl: "https://charts.example.com/stable/%2e%2e/x" }, Code.InvalidArgument],
    [
      "dot segments escaping the entry",
      { chart: "oci://registry.example.com/charts/../private/x" },
      Code.InvalidArgument,
    ],
    ["credentials", { chart: "podinfo", repoUrl: "https://u:p@charts.example.com/stable" }, Code.InvalidArgument],
    ["a decimal IPv4 host", { chart: "podinfo", repoUrl: "http://2852039166/" }, Code.InvalidArgument],
  ];
  for (const [what, fields, code] of refused) {
    it(`refuses ${what} with ${Code[code]} and runs nothing`, async () => {
      const h = await setup();
      const err = await failure(h.releases.installRelease({ namespace: NS, name: "web", ...fields }));
      expect(err.code).toBe(code);
      expect(h.helm.verbs()).toEqual(["version"]);
      expect(h.kube.calls.filter((c) => c !== "ping")).toEqual([]);
    });
  }

  it("refuses an upgrade to a source outside the catalogue, and a recorded source no longer in it", async () => {
    const h = await createHarness();
    managedNamespace(h.cluster, NS);
    // Installed while the server had no catalogue…
    await h.releases.installRelease({ namespace: NS, name: "web", chart: "oci://old.example.com/charts/podinfo" });
    // …then upgraded through a server with one.
    const strict = await setup();
    strict.cluster.releases = h.cluster.releases;
    expect((await failure(strict.releases.upgradeRelease({ namespace: NS, name: "web", values: { a: 1 } }))).code).toBe(
      Code.PermissionDenied,
    );
    expect(
      (
        await failure(
          strict.releases.upgradeRelease({ namespace: NS, name: "web", chart: "oci://evil.example.com/c/x" }),
        )
      ).code,
    ).toBe(Code.PermissionDenied);
    expect(strict.helm.verbs()).toEqual(["version"]);
    await strict.releases.upgradeRelease({
      namespace: NS,
      name: "web",
      chart: "oci://registry.example.com/charts/podinfo",
    });
    expect(strict.helm.verbs()).toEqual(["version", "upgrade"]);
  });
});
