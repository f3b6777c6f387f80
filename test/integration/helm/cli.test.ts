import { randomBytes } from "node:crypto";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PaasError } from "../../../src/errors.ts";
import { createHelmCli, type HelmCli } from "../../../src/helm/cli.ts";
import type { HelmLogger } from "../../../src/helm/runner.ts";
import type { ReleaseInfo } from "../../../src/domain/release.ts";

// Drives the real helm v4 and v3 against the testbed cluster (npm run testbed:up).
const REQUIRED = ["KUBECONFIG", "HELM_BINARY", "HELM_V3_BINARY", "CHART_REPO_URL", "OCI_REGISTRY"] as const;
const missing = REQUIRED.filter((k) => !process.env[k]);
const env = process.env as Record<(typeof REQUIRED)[number], string>;

// The adapter logs failures at warn; most are expected here, so only print the
// unclassified ones, which a red test would need explaining.
const logger: HelmLogger = {
  debug: () => {},
  info: () => {},
  warn: (obj, msg) => {
    if ((obj as { kind?: string }).kind === "internal") console.warn(msg, JSON.stringify(obj));
  },
  error: (obj, msg) => console.error(msg, JSON.stringify(obj)),
};

async function rejection(p: Promise<unknown>): Promise<PaasError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PaasError);
  return err as PaasError;
}

if (missing.length > 0) {
  describe("helm CLI integration", () => {
    it("needs the testbed environment", () => {
      throw new Error(
        `missing ${missing.join(", ")}: run \`npm run testbed:up\`, then \`set -a; source .testbed/env; set +a\``,
      );
    });
  });
} else {
  const binaries = [
    { label: "v4", binary: env.HELM_BINARY, major: 4 },
    { label: "v3", binary: env.HELM_V3_BINARY, major: 3 },
  ];

  describe.each(binaries)("helm $label CLI against the testbed", ({ binary, major }) => {
    const namespace = `paas-ws-it-${major}-${randomBytes(3).toString("hex")}`;
    const repo = { ref: "podinfo", repoUrl: env.CHART_REPO_URL };
    const timeoutSeconds = 120;
    let cli: HelmCli;
    let core: CoreV1Api;

    beforeAll(() => {
      cli = createHelmCli({ binary, logger, env: { KUBECONFIG: env.KUBECONFIG }, timeoutSeconds });
      const kc = new KubeConfig();
      kc.loadFromFile(env.KUBECONFIG);
      core = kc.makeApiClient(CoreV1Api);
    });

    afterAll(async () => {
      await cli?.close();
      // helm cannot delete namespaces; the Kubernetes API can.
      await core?.deleteNamespace({ name: namespace }).catch(() => undefined);
    });

    it("detects the version", async () => {
      expect(await cli.major()).toBe(major);
      expect(await cli.version()).toMatch(major === 4 ? /^v4\./ : /^v3\./);
    });

    let installed: ReleaseInfo;
    it("installs podinfo 6.13.0 from the chart repository", async () => {
      installed = await cli.install({
        namespace,
        name: "web",
        timeoutSeconds,
        chart: { ...repo, version: "6.13.0" },
        values: { replicaCount: 1, ui: { message: "one" } },
        createNamespace: true,
        wait: true,
        labels: { "paas.example/tenant": "it" },
      });
      expect(installed).toMatchObject({
        name: "web",
        namespace,
        revision: 1,
        status: "deployed",
        chart: "podinfo",
        chartVersion: "6.13.0",
        appVersion: "6.13.0",
        values: { replicaCount: 1, ui: { message: "one" } },
      });
      expect(installed.notes).not.toBe("");
    });

    it("stores the release labels on helm's storage Secret", async () => {
      const secrets = await core.listNamespacedSecret({ namespace, labelSelector: "owner=helm,name=web" });
      expect(secrets.items.map((s) => s.metadata?.labels?.["paas.example/tenant"])).toEqual(["it"]);
    });

    it("gets the release with values and notes", async () => {
      const got = await cli.get(namespace, "web");
      expect(got).toMatchObject({
        revision: 1,
        status: "deployed",
        chart: "podinfo",
        chartVersion: "6.13.0",
        values: installed.values,
        notes: installed.notes,
      });
      expect(got.updated?.getTime()).toBe(installed.updated?.getTime());
    });

    it("upgrades to 6.14.1 keeping previous values", async () => {
      const upgraded = await cli.upgrade({
        namespace,
        name: "web",
        timeoutSeconds,
        chart: { ...repo, version: "6.14.1" },
        values: { ui: { message: "two" } },
        resetValues: false,
        reuseValues: true,
        wait: true,
        labels: { "paas.example/tenant": "it" },
      });
      expect(upgraded).toMatchObject({
        revision: 2,
        status: "deployed",
        chartVersion: "6.14.1",
        values: { replicaCount: 1, ui: { message: "two" } },
      });
    });

    it("lists the history: 1 superseded, 2 deployed", async () => {
      const history = await cli.history(namespace, "web");
      expect(history.map((h) => [h.revision, h.status, h.chart])).toEqual([
        [1, "superseded", "podinfo-6.13.0"],
        [2, "deployed", "podinfo-6.14.1"],
      ]);
    });

    it("rolls back to the previous revision", async () => {
      await cli.rollback({ namespace, name: "web", revision: 0, wait: true, timeoutSeconds });
      const got = await cli.get(namespace, "web");
      expect(got).toMatchObject({
        revision: 3,
        status: "deployed",
        chartVersion: "6.13.0",
        values: { replicaCount: 1, ui: { message: "one" } },
      });
    });

    it("refuses to install the same name twice", async () => {
      const err = await rejection(
        cli.install({
          namespace,
          name: "web",
          timeoutSeconds,
          chart: { ...repo, version: "6.13.0" },
          values: {},
          createNamespace: false,
          wait: false,
          labels: {},
        }),
      );
      expect(err).toMatchObject({
        kind: "already_exists",
        message: `Release web already exists in namespace ${namespace}`,
      });
    });

    it("installs from the OCI registry", async () => {
      const oci = await cli.install({
        namespace,
        name: "oci-web",
        timeoutSeconds,
        chart: { ref: `oci://${env.OCI_REGISTRY}/charts/podinfo`, version: "6.14.1" },
        values: {},
        createNamespace: false,
        wait: false,
        labels: {},
      });
      expect(oci).toMatchObject({
        name: "oci-web",
        revision: 1,
        status: "deployed",
        chart: "podinfo",
        chartVersion: "6.14.1",
        values: {},
      });
    });

    it("lists the namespace's releases", async () => {
      const list = await cli.list(namespace);
      expect(list.map((r) => [r.name, r.revision, r.status, r.chart, r.chartVersion])).toEqual([
        ["oci-web", 1, "deployed", "podinfo", "6.14.1"],
        ["web", 3, "deployed", "podinfo", "6.13.0"],
      ]);
    });

    it("classifies chart and release errors", async () => {
      const base = { namespace, timeoutSeconds: 30, values: {}, createNamespace: false, wait: false, labels: {} };
      expect(await rejection(cli.install({ ...base, name: "x", chart: { ...repo, version: "9.9.9" } }))).toMatchObject({
        kind: "not_found",
      });
      expect(
        await rejection(
          cli.install({
            ...base,
            name: "x",
            chart: { ref: `oci://${env.OCI_REGISTRY}/charts/nope`, version: "1.0.0" },
          }),
        ),
      ).toMatchObject({
        kind: "not_found",
      });
      expect(
        await rejection(cli.upgrade({ ...base, name: "nope", chart: repo, resetValues: false, reuseValues: true })),
      ).toMatchObject({
        kind: "failed_precondition",
      });
      expect(
        await rejection(cli.rollback({ namespace, name: "web", revision: 99, wait: false, timeoutSeconds: 30 })),
      ).toMatchObject({ kind: "not_found" });
      expect(await rejection(cli.history(namespace, "nope"))).toMatchObject({ kind: "not_found" });
    });

    // Its pods match no node, so it never becomes ready and --wait blocks until its timeout.
    const stuck = { replicaCount: 2, nodeSelector: { "paas.example/none": "nowhere" } };
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

    it("reports helm's --wait timeout as timeout, with the release failed", async () => {
      const err = await rejection(
        cli.install({
          namespace,
          name: "stuck",
          timeoutSeconds: 3,
          chart: { ...repo, version: "6.13.0" },
          values: stuck,
          createNamespace: false,
          wait: true,
          labels: {},
        }),
      );
      expect(err).toMatchObject({ kind: "timeout", message: "helm install of release stuck timed out" });
      expect(await cli.get(namespace, "stuck")).toMatchObject({ revision: 1, status: "failed" });
    });

    it("cancels an upgrade with SIGTERM: helm records a failed revision, nothing stays pending", async () => {
      const controller = new AbortController();
      const upgrading = cli.upgrade({
        namespace,
        name: "stuck",
        timeoutSeconds: 60,
        chart: { ...repo, version: "6.14.1" },
        values: {},
        resetValues: false,
        reuseValues: true,
        wait: true,
        labels: {},
        signal: controller.signal,
      });
      // While the first upgrade waits, the release is pending-upgrade.
      await sleep(2000);
      const concurrent = await rejection(
        cli.upgrade({
          namespace,
          name: "stuck",
          timeoutSeconds: 30,
          chart: { ...repo, version: "6.14.1" },
          values: {},
          resetValues: false,
          reuseValues: true,
          wait: false,
          labels: {},
        }),
      );
      expect(concurrent).toMatchObject({
        kind: "conflict",
        message: "Another operation on release stuck is in progress",
      });
      controller.abort();
      expect(await rejection(upgrading)).toMatchObject({
        kind: "unavailable",
        message: "helm upgrade of release stuck was cancelled",
      });
      const history = await cli.history(namespace, "stuck");
      expect(history.map((h) => [h.revision, h.status])).toEqual([
        [1, "failed"],
        [2, "failed"],
      ]);
      expect(history[1]?.description).toContain("context canceled");
      await cli.uninstall({ namespace, name: "stuck", timeoutSeconds });
    });

    it("uninstalls, after which get is not_found", async () => {
      await cli.uninstall({ namespace, name: "web", timeoutSeconds });
      await cli.uninstall({ namespace, name: "oci-web", timeoutSeconds });
      expect(await rejection(cli.get(namespace, "web"))).toMatchObject({
        kind: "not_found",
        message: `Release web not found in namespace ${namespace}`,
      });
      expect(await rejection(cli.uninstall({ namespace, name: "web", timeoutSeconds }))).toMatchObject({
        kind: "not_found",
      });
      expect(await cli.list(namespace)).toEqual([]);
    });
  });
}
