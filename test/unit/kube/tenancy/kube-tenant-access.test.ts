import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createTenantAccess, DROPPED, RESERVED } from "../../../../src/kube/tenancy/kube-tenant-access.ts";
import { FakeApiServer, json, status } from "../../../support/fake-apiserver.ts";

const MANAGED = { key: "app.kubernetes.io/managed-by", value: "paas-operator" };
const labels = { "app.kubernetes.io/managed-by": "paas-operator" };

describe("createTenantAccess", () => {
  let fake: FakeApiServer;
  beforeEach(async () => {
    fake = await FakeApiServer.start();
  });
  afterEach(async () => {
    await fake.close();
  });

  const ns = (name: string, nsLabels: Record<string, string>, extra: Record<string, unknown> = {}) => ({
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name, labels: nsLabels, ...extra },
    status: { phase: "Active" },
  });
  const discovery = {
    kind: "APIGroupDiscoveryList",
    items: [
      {
        metadata: { name: "" },
        versions: [
          { version: "v1", resources: [{ resource: "pods", responseKind: { kind: "Pod" }, scope: "Namespaced" }] },
        ],
      },
    ],
  };

  function serve(namespaces: Record<string, unknown>) {
    fake.handler = (req, res) => {
      if (req.path === "/api" || req.path === "/apis")
        return json(res, 200, req.path === "/api" ? discovery : { kind: "APIGroupDiscoveryList", items: [] });
      const name = req.path.split("/").pop()!;
      if (namespaces[name]) return json(res, 200, namespaces[name]);
      status(res, 404, "NotFound", "not found");
    };
  }

  it("impersonates the namespace's deployer ServiceAccount", () => {
    const t = createTenantAccess({ kubeConfig: fake.kubeConfig(), managedLabel: MANAGED });
    expect(t.userFor("paas-ws-a")).toBe("system:serviceaccount:paas-ws-a:paas-deployer");
  });

  it("returns the guard policy of a ready namespace: discovery, its Pod Security level, reserved and dropped kinds", async () => {
    serve({
      "paas-ws-a": ns("paas-ws-a", {
        ...labels,
        "paas.io/ready": "true",
        "pod-security.kubernetes.io/enforce": "restricted",
      }),
    });
    const t = createTenantAccess({ kubeConfig: fake.kubeConfig(), managedLabel: MANAGED });
    expect(await t.prepareWrite("paas-ws-a")).toEqual({
      namespace: "paas-ws-a",
      scopes: { "v1/Pod": true },
      podSecurity: "restricted",
      reserved: RESERVED,
      drop: DROPPED,
    });
    // Discovery is cached: the second write reads the namespace only; refreshDiscovery reads it again.
    await t.prepareWrite("paas-ws-a");
    expect(fake.requests.filter((r) => r.path === "/api")).toHaveLength(1);
    t.refreshDiscovery();
    await t.prepareWrite("paas-ws-a");
    expect(fake.requests.filter((r) => r.path === "/api")).toHaveLength(2);
  });

  it("refuses namespaces that are not fully provisioned, terminating, unmanaged or absent", async () => {
    serve({
      "paas-ws-half": ns("paas-ws-half", labels),
      "paas-ws-gone": ns(
        "paas-ws-gone",
        { ...labels, "paas.io/ready": "true" },
        { deletionTimestamp: "2026-01-01T00:00:00Z" },
      ),
      "paas-ws-theirs": ns("paas-ws-theirs", { "paas.io/ready": "true" }),
    });
    const t = createTenantAccess({ kubeConfig: fake.kubeConfig(), managedLabel: MANAGED });
    await expect(t.prepareWrite("paas-ws-half")).rejects.toMatchObject({
      kind: "failed_precondition",
      message: "namespace paas-ws-half is not fully provisioned; call CreateNamespace again",
    });
    await expect(t.prepareWrite("paas-ws-gone")).rejects.toMatchObject({
      kind: "failed_precondition",
      message: "namespace paas-ws-gone is being deleted",
    });
    await expect(t.prepareWrite("paas-ws-theirs")).rejects.toMatchObject({ kind: "not_found" });
    await expect(t.prepareWrite("paas-ws-absent")).rejects.toMatchObject({ kind: "not_found" });
    await expect(t.prepareWrite("Bad_Name")).rejects.toMatchObject({ kind: "invalid_argument" });
  });
});
