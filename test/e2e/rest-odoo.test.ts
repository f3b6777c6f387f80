import { execFile } from "node:child_process";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, testbedEnv, uniqueNamespace, type ServerProcess } from "../support/testbed.ts";

// The Odoo addon's view of the service: a Python client (standard library only) walks a
// release through its life over the old operator's REST API against the real server, the
// real cluster and real Helm; then the cluster is checked directly.

const tb = testbedEnv();
const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
const core = kc.makeApiClient(k8s.CoreV1Api);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function python(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      "python3",
      ["test/python/odoo_client.py", ...args],
      // Only what the script needs: no settings leak in from the test's own environment.
      { env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env }, timeout: 600_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}

describe("the Odoo addon's REST calls against the real server", () => {
  let server: ServerProcess;
  const ns = uniqueNamespace("odoo");

  beforeAll(async () => {
    server = await startServer();
  });

  afterAll(async () => {
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
    expect(await server.stop()).toBe(0);
  });

  it("runs health → namespace → install → get → status → upgrade → revisions → rollback → uninstall → 404, and an OCI install", async () => {
    const started = Date.now();
    const run = await python([
      "--base-url",
      server.baseUrl,
      "--api-key",
      server.apiKey,
      "--chart-repo",
      tb.CHART_REPO_URL,
      "--oci-registry",
      tb.OCI_REGISTRY,
      "--namespace",
      ns,
    ]);
    const output = run.stdout + run.stderr;
    expect(run.code, output).toBe(0);
    for (const line of [
      "[ok] health: healthy",
      `[ok] create namespace: Namespace ${ns} created`,
      "[ok] install podinfo 6.13.0 from the chart repository: revision 1, deployed",
      "[ok] get: revision 1",
      "Running 1/1",
      "[ok] upgrade to 6.14.1: revision 2",
      "[ok] revisions: 1 superseded podinfo-6.13.0; 2 deployed podinfo-6.14.1",
      "[ok] rollback: Release web rolled back to the previous revision (now revision 3)",
      `[ok] uninstall: Release web uninstalled from namespace ${ns}`,
      `[ok] get after uninstall: 404 Release web not found in namespace ${ns}`,
      `[ok] install nginx from OCI: oci://${tb.OCI_REGISTRY}/charts/nginx`,
      "PASS: every check passed",
    ]) {
      expect(output).toContain(line);
    }
    expect(output).not.toContain("FAIL");
    console.log(`odoo_client.py passed in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  });

  it("left the cluster as the calls said: namespace with its quota, no Helm storage Secrets after uninstall", async () => {
    const namespace = await core.readNamespace({ name: ns });
    expect(namespace.metadata?.labels?.["app.kubernetes.io/managed-by"]).toBe("paas-operator");
    const quotas = await core.listNamespacedResourceQuota({ namespace: ns });
    expect(quotas.items[0]?.spec?.hard).toMatchObject({
      "limits.cpu": "4",
      "limits.memory": "8Gi",
      "requests.storage": "10Gi",
    });
    for (const release of ["web", "proxy"]) {
      const secrets = await core.listNamespacedSecret({ namespace: ns, labelSelector: `owner=helm,name=${release}` });
      expect(
        secrets.items.map((s) => s.metadata?.name),
        release,
      ).toEqual([]);
    }
    // Nothing in the foreign namespace the client tried.
    const foreign = await core.listNamespacedSecret({ namespace: "kube-system", labelSelector: "owner=helm" });
    expect(foreign.items).toHaveLength(0);
  });

  it("went through the same interceptors: every REST call logged as its RPC, with caller and peer, never the key", () => {
    const rpcs = server.logs.filter((l) => typeof l.rpc === "string" && l.namespace === ns);
    const names = new Set(rpcs.map((l) => l.rpc));
    for (const rpc of [
      "InstallRelease",
      "GetRelease",
      "GetReleaseStatus",
      "UpgradeRelease",
      "ListReleaseRevisions",
      "RollbackRelease",
      "UninstallRelease",
    ]) {
      expect(names, rpc).toContain(`paas.v1.ReleaseService/${rpc}`);
    }
    for (const l of rpcs) {
      expect(l.peer).toBe("127.0.0.1");
      if (l.code !== "Unauthenticated") expect(l.caller).toMatch(/^key-[0-9a-f]{8}$/);
    }
    expect(JSON.stringify(server.logs)).not.toContain(server.apiKey);
  });

  it("exits non-zero with a clear message when the operator answers otherwise", async () => {
    const wrongKey = await python([
      "--base-url",
      server.baseUrl,
      "--api-key",
      "not-the-right-key-0123",
      "--chart-repo",
      tb.CHART_REPO_URL,
      "--oci-registry",
      tb.OCI_REGISTRY,
      "--namespace",
      uniqueNamespace("odoo"),
    ]);
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stdout).toContain("FAIL: unexpected HTTP 401 (unauthorized): invalid API key");
    const missing = await python(["--base-url", server.baseUrl]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("FAIL: missing settings: --api-key, --chart-repo, --oci-registry");
    // Settings from the environment work as well as flags.
    const fromEnv = await python([], {
      PAAS_BASE_URL: "http://127.0.0.1:1",
      PAAS_API_KEY: "k",
      CHART_REPO_URL: "http://x",
      OCI_REGISTRY: "y",
    });
    expect(fromEnv.code).toBe(1);
    expect(fromEnv.stdout).toContain("FAIL: GET /health: cannot reach the operator at http://127.0.0.1:1");
  });
});
