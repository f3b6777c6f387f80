import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createHarness } from "../../support/harness.ts";
import { failure } from "../../support/failure.ts";

describe("NamespaceService", () => {
  it("creates a namespace with default limits, then updates its quota", async () => {
    const h = await createHarness();
    const first = await h.namespaces.createNamespace({ name: "paas-ws-a" });
    expect(first.created).toBe(true);
    expect(first.namespace?.quota.map((q) => q.hard)).toEqual(["2", "4Gi", "20Gi"]);
    const second = await h.namespaces.createNamespace({
      name: "paas-ws-a",
      cpuLimit: "500m",
      memoryLimit: "1Gi",
      storageLimit: "5Gi",
    });
    expect(second.created).toBe(false);
    expect(h.cluster.namespaces.get("paas-ws-a")?.quota).toEqual({ cpu: "500m", memory: "1Gi", storage: "5Gi" });
  });

  for (const [field, value] of [
    ["cpuLimit", "two"],
    ["memoryLimit", "4GB"],
    ["storageLimit", "-1Gi"],
    ["cpuLimit", "0"],
    ["memoryLimit", "1e999999999999999999999999999999999"],
  ] as const) {
    it(`refuses ${field}=${value} as INVALID_ARGUMENT and creates nothing`, async () => {
      const h = await createHarness();
      const err = await failure(h.namespaces.createNamespace({ name: "paas-ws-a", [field]: value }));
      expect(err.code).toBe(Code.InvalidArgument);
      expect(h.cluster.namespaces.size).toBe(0);
    });
  }

  it("passes a per-namespace Pod Security level and refuses unknown levels", async () => {
    const h = await createHarness();
    await h.namespaces.createNamespace({ name: "paas-ws-a", podSecurity: "baseline" });
    expect(h.kube.calls).toContain("ensureNamespace paas-ws-a baseline");
    const err = await failure(h.namespaces.createNamespace({ name: "paas-ws-b", podSecurity: "privileged" }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(h.cluster.namespaces.has("paas-ws-b")).toBe(false);
  });

  it("gets, lists and deletes managed namespaces only", async () => {
    const h = await createHarness();
    await h.namespaces.createNamespace({ name: "paas-ws-a" });
    await h.namespaces.createNamespace({ name: "paas-ws-b" });
    h.cluster.namespaces.set("paas-ws-foreign", { quota: { cpu: "1", memory: "1Gi", storage: "1Gi" }, managed: false });
    expect((await h.namespaces.listNamespaces({})).namespaces.map((n) => n.name)).toEqual(["paas-ws-a", "paas-ws-b"]);
    expect((await h.namespaces.getNamespace({ name: "paas-ws-a" })).namespace?.phase).toBe("Active");
    expect((await failure(h.namespaces.getNamespace({ name: "paas-ws-foreign" }))).code).toBe(Code.NotFound);
    await h.namespaces.deleteNamespace({ name: "paas-ws-a" });
    expect((await failure(h.namespaces.deleteNamespace({ name: "paas-ws-a" }))).code).toBe(Code.NotFound);
  });
});
