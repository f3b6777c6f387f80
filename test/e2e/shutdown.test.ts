import * as k8s from "@kubernetes/client-node";
import { afterAll, describe, expect, it } from "vitest";
import { createPaasClient } from "../../clients/paas-client.ts";
import { ReleaseStatus } from "../../gen/paas/v1/release_pb.js";
import { startServer, testbedEnv, uniqueNamespace } from "../support/testbed.ts";

const tb = testbedEnv();
const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
const core = kc.makeApiClient(k8s.CoreV1Api);
const ns = uniqueNamespace("term");

afterAll(async () => {
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
});

describe("SIGTERM during an install", () => {
  it("lets the install finish, never leaves it pending, and exits 0", async () => {
    const server = await startServer();
    const client = createPaasClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, protocol: "grpc" });
    await client.namespaces.createNamespace({ name: ns });
    const install = client.releases.installRelease({ namespace: ns, name: "web", chart: "testbed/podinfo", version: "6.13.0", wait: true });
    // Wait until helm is running, then ask the server to stop.
    const deadline = Date.now() + 20_000;
    while (!server.logs.some((l) => l.msg === "helm install started") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(server.logs.some((l) => l.msg === "helm install started")).toBe(true);
    expect(server.logs.some((l) => l.msg === "helm install")).toBe(false);
    const exit = server.stop("SIGTERM");
    const res = await install;
    expect(res.release?.status).toBe(ReleaseStatus.DEPLOYED);
    expect(await exit).toBe(0);
    const secrets = await core.listNamespacedSecret({ namespace: ns, labelSelector: "owner=helm,name=web" });
    expect(secrets.items.map((s) => s.metadata?.labels?.status)).toEqual(["deployed"]);
    expect(server.logs.some((l) => l.msg === "stopped")).toBe(true);
    // The install finished after SIGTERM, and the server waited for it.
    const order = server.logs.map((l) => l.msg);
    expect(order.indexOf("helm install")).toBeGreaterThan(order.findIndex((m) => String(m).startsWith("shutting down")));
  });
});
