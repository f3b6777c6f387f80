import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalVolumes } from "../support/local-volumes.ts";
import { waitFor } from "../support/reliability.ts";
import { startServer, testbedEnv, uniqueNamespace, type ServerProcess } from "../support/testbed.ts";

// The ops API's callers' view: a Python client (urllib, standard library only) runs every ops
// path against the real server and cluster; then the cluster is checked directly.

const tb = testbedEnv();
const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
const core = kc.makeApiClient(k8s.CoreV1Api);
const apps = kc.makeApiClient(k8s.AppsV1Api);

function python(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      "python3",
      ["test/python/ops_client.py", ...args],
      { env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp" }, timeout: 300_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, output: stdout + stderr }),
    );
  });
}

describe("the ops API's REST contract against the real server", () => {
  let server: ServerProcess;
  const ns = uniqueNamespace("ops");
  const local = new LocalVolumes(kc, randomBytes(3).toString("hex"), 5);

  beforeAll(async () => {
    server = await startServer();
    const res = await fetch(`${server.baseUrl}/api/namespaces`, {
      method: "POST",
      headers: { "x-api-key": server.apiKey, "content-type": "application/json" },
      body: JSON.stringify({ name: ns, pod_security: "baseline" }),
    });
    expect(res.status).toBe(201);
    await local.create();
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        metadata: { name: "app" },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: "app" } },
          template: {
            metadata: { labels: { app: "app" } },
            spec: {
              containers: [
                {
                  name: "c",
                  image: "registry.k8s.io/pause:3.10",
                  resources: { requests: { cpu: "10m", memory: "16Mi" }, limits: { cpu: "50m", memory: "32Mi" } },
                },
              ],
            },
          },
        },
      },
    });
    await apps.createNamespacedStatefulSet({ namespace: ns, body: local.statefulSet("db", 2) });
    await core.createNamespacedPersistentVolumeClaim({
      namespace: ns,
      body: {
        metadata: { name: "scratch" },
        spec: {
          accessModes: ["ReadWriteOnce"],
          storageClassName: local.storageClass,
          resources: { requests: { storage: "1Gi" } },
        },
      },
    });
    await waitFor(
      "db ready and scratch bound",
      async () => {
        const sts = await apps.readNamespacedStatefulSet({ name: "db", namespace: ns });
        const pvc = await core.readNamespacedPersistentVolumeClaim({ name: "scratch", namespace: ns });
        return sts.status?.readyReplicas === 2 && pvc.status?.phase === "Bound" ? true : undefined;
      },
      90_000,
    );
  }, 150_000);

  afterAll(async () => {
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
    await local.destroy();
    expect(await server.stop()).toBe(0);
  });

  it("passes the Python ops client, and the cluster shows what it was told", async () => {
    const before = {
      db0: (await core.readNamespacedPersistentVolumeClaim({ name: "data-db-0", namespace: ns })).metadata?.uid,
      db1: (await core.readNamespacedPersistentVolumeClaim({ name: "data-db-1", namespace: ns })).metadata?.uid,
    };
    const run = await python([
      "--base-url",
      server.baseUrl,
      "--api-key",
      server.apiKey,
      "--namespace",
      ns,
      "--deployment",
      "app",
      "--statefulset",
      "db",
      "--pod",
      "db-0",
      "--mounted-pvc",
      "data-db-1",
      "--free-pvc",
      "scratch",
    ]);
    expect(run.code, run.output).toBe(0);
    for (const line of [
      "[ok] health: live, ready",
      "[ok] scale deployment app: 3, then 1",
      "[ok] scale statefulset db: 2",
      "[ok] refusals: 422 missing replicas, 404 unknown deployment, 403 kube-system, 401 wrong key",
      "[ok] delete pod db-0",
      "[ok] delete claim: data-db-1 refused",
      "success, steps wait-for-release, scale-to-zero, wait-pods-gone, delete-pvcs, wait-pvcs-gone, scale-up, wait-ready, record",
      "PASS: every check passed",
    ]) {
      expect(run.output).toContain(line);
    }
    expect((await apps.readNamespacedDeployment({ name: "app", namespace: ns })).spec?.replicas).toBe(1);
    expect((await apps.readNamespacedStatefulSet({ name: "db", namespace: ns })).spec?.replicas).toBe(2);
    const db1 = await core.readNamespacedPersistentVolumeClaim({ name: "data-db-1", namespace: ns });
    expect(db1.metadata?.uid).not.toBe(before.db1);
    expect(db1.status?.phase).toBe("Bound");
    expect((await core.readNamespacedPersistentVolumeClaim({ name: "data-db-0", namespace: ns })).metadata?.uid).toBe(
      before.db0,
    );
    await expect(core.readNamespacedPersistentVolumeClaim({ name: "scratch", namespace: ns })).rejects.toThrow();
  }, 300_000);
});
