/**
 * The chart version and digest a release records (src/helm/pull.ts, src/helm/chart-labels.ts),
 * against the real server, Helm v4 and v3, the testbed's OCI registry and HTTP repository:
 * a version range or no version resolves to an exact version, an OCI install records the
 * registry's manifest digest (asked of the registry itself, not of helm), reads return it,
 * an upgrade from an HTTP repository clears it, a rollback brings it back, and a values-only
 * upgrade keeps the deployed version.
 */
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPaasClient, type PaasClient } from "../../clients/paas-client.ts";
import { ReleaseStatus } from "../../gen/paas/v1/release_pb.js";
import { startServer, testbedEnv, uniqueNamespace, type ServerProcess } from "../support/testbed.ts";

const tb = testbedEnv();
const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
const core = kc.makeApiClient(k8s.CoreV1Api);
const OCI_PODINFO = `oci://${tb.OCI_REGISTRY}/charts/podinfo`;

/** manifestDigest asks the registry (OCI distribution API) which manifest a tag points at. */
async function manifestDigest(repository: string, tag: string): Promise<string> {
  const res = await fetch(`http://${tb.OCI_REGISTRY}/v2/${repository}/manifests/${tag}`, {
    method: "HEAD",
    headers: { Accept: "application/vnd.oci.image.manifest.v1+json" },
  });
  expect(res.status, `manifest ${repository}:${tag}`).toBe(200);
  const digest = res.headers.get("docker-content-digest") ?? "";
  expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  return digest;
}

/** storageLabels are the labels of the release's newest storage Secret (Helm's own record). */
async function storageLabels(namespace: string, name: string): Promise<Record<string, string>> {
  const list = await core.listNamespacedSecret({ namespace, labelSelector: `owner=helm,name=${name}` });
  const newest = list.items.sort(
    (a, b) => Number(b.metadata?.labels?.version) - Number(a.metadata?.labels?.version),
  )[0];
  return newest?.metadata?.labels ?? {};
}

describe.each([
  ["Helm v4", tb.HELM_BINARY],
  ["Helm v3", tb.HELM_V3_BINARY],
])("recorded chart version and digest with %s", (_label, helmBinary) => {
  let server: ServerProcess;
  let paas: PaasClient;
  const ns = uniqueNamespace("digest");
  let digest6130: string;
  let digest6141: string;

  beforeAll(async () => {
    digest6130 = await manifestDigest("charts/podinfo", "6.13.0");
    digest6141 = await manifestDigest("charts/podinfo", "6.14.1");
    expect(digest6130).not.toBe(digest6141);
    server = await startServer({ HELM_BINARY: helmBinary });
    paas = createPaasClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, protocol: "connect" });
    await paas.namespaces.createNamespace({ name: ns });
  });

  afterAll(async () => {
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
    expect(await server?.stop()).toBe(0);
  });

  it("an OCI install with a version range records the exact version and the registry's manifest digest", async () => {
    const res = await paas.releases.installRelease({
      namespace: ns,
      name: "oci",
      chart: OCI_PODINFO,
      version: "~6.13",
      wait: false,
    });
    expect(res.release).toMatchObject({
      status: ReleaseStatus.DEPLOYED,
      chart: "podinfo",
      chartVersion: "6.13.0",
      chartDigest: digest6130,
      chartReference: OCI_PODINFO,
    });
    const labels = await storageLabels(ns, "oci");
    expect(labels).toMatchObject({
      "paas-chart-version": "6.13.0",
      "paas-chart-sha256-0": digest6130.slice(7, 39),
      "paas-chart-sha256-1": digest6130.slice(39),
    });
    const got = await paas.releases.getRelease({ namespace: ns, name: "oci" });
    expect(got.release).toMatchObject({ chartVersion: "6.13.0", chartDigest: digest6130 });
    const status = await paas.releases.getReleaseStatus({ namespace: ns, name: "oci" });
    expect(status.release?.chartDigest).toBe(digest6130);
  });

  it("a values-only upgrade keeps the deployed version and its digest", async () => {
    const res = await paas.releases.upgradeRelease({ namespace: ns, name: "oci", values: { replicaCount: 2 } });
    expect(res.release).toMatchObject({ revision: 2, chartVersion: "6.13.0", chartDigest: digest6130 });
    expect((await paas.releases.getRelease({ namespace: ns, name: "oci" })).release?.chartDigest).toBe(digest6130);
  });

  it("an upgrade naming the chart without a version takes the newest and records its digest", async () => {
    const res = await paas.releases.upgradeRelease({ namespace: ns, name: "oci", chart: OCI_PODINFO });
    expect(res.release).toMatchObject({ revision: 3, chartVersion: "6.14.1", chartDigest: digest6141 });
    expect((await storageLabels(ns, "oci"))["paas-chart-version"]).toBe("6.14.1");
    expect((await paas.releases.getRelease({ namespace: ns, name: "oci" })).release?.chartDigest).toBe(digest6141);
  });

  it("an upgrade to an HTTP repository chart clears the digest; a rollback brings the old one back", async () => {
    const up = await paas.releases.upgradeRelease({
      namespace: ns,
      name: "oci",
      chart: "podinfo",
      repoUrl: tb.CHART_REPO_URL,
      version: "6.13.0",
    });
    expect(up.release).toMatchObject({ revision: 4, chartVersion: "6.13.0", chartDigest: "" });
    const labels = await storageLabels(ns, "oci");
    expect(labels).toMatchObject({
      "paas-chart-version": "6.13.0",
      "paas-chart-sha256-0": "",
      "paas-chart-sha256-1": "",
    });
    expect((await paas.releases.getRelease({ namespace: ns, name: "oci" })).release).toMatchObject({
      chartDigest: "",
      repoUrl: tb.CHART_REPO_URL,
    });
    // Helm's rollback copies the target revision's labels: chart reference and digest of revision 3.
    const rb = await paas.releases.rollbackRelease({ namespace: ns, name: "oci", revision: 3 });
    expect(rb.release).toMatchObject({
      revision: 5,
      chartVersion: "6.14.1",
      chartDigest: digest6141,
      chartReference: OCI_PODINFO,
    });
  });

  it("an HTTP repository install without a version records the newest version and no digest", async () => {
    const res = await paas.releases.installRelease({
      namespace: ns,
      name: "http",
      chart: "podinfo",
      repoUrl: tb.CHART_REPO_URL,
      wait: false,
    });
    expect(res.release).toMatchObject({ status: ReleaseStatus.DEPLOYED, chartVersion: "6.14.1", chartDigest: "" });
    expect(await storageLabels(ns, "http")).toMatchObject({
      "paas-chart-version": "6.14.1",
      "paas-chart-sha256-0": "",
      "paas-chart-sha256-1": "",
    });
    await paas.releases.uninstallRelease({ namespace: ns, name: "http" });
    await paas.releases.uninstallRelease({ namespace: ns, name: "oci" });
    expect((await core.listNamespacedSecret({ namespace: ns, labelSelector: "owner=helm" })).items).toEqual([]);
  });
});
