import { Code, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus as Serving } from "../../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import { PaasError } from "../../../src/errors.ts";
import { createHarness } from "../../support/harness.ts";
import { failure } from "../../support/failure.ts";

describe("NamespaceService", () => {
  it("creates a namespace with default limits, then updates its quota", async () => {
    const h = await createHarness();
    const first = await h.namespaces.createNamespace({ name: "paas-ws-a" });
    expect(first.created).toBe(true);
    expect(first.namespace?.quota.map((q) => q.hard)).toEqual(["2", "4Gi", "20Gi"]);
    const second = await h.namespaces.createNamespace({ name: "paas-ws-a", cpuLimit: "500m", memoryLimit: "1Gi", storageLimit: "5Gi" });
    expect(second.created).toBe(false);
    expect(h.cluster.namespaces.get("paas-ws-a")?.quota).toEqual({ cpu: "500m", memory: "1Gi", storage: "5Gi" });
  });

  for (const [field, value] of [["cpuLimit", "two"], ["memoryLimit", "4GB"], ["storageLimit", "-1Gi"], ["cpuLimit", "0"], ["memoryLimit", "1e999999999999999999999999999999999"]] as const) {
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

describe("Health", () => {
  it("is SERVING when helm and the API answer, NOT_SERVING when either fails", async () => {
    const h = await createHarness();
    expect((await h.health.check({ service: "" })).status).toBe(Serving.SERVING);
    expect((await h.health.check({ service: "paas.v1.ReleaseService" })).status).toBe(Serving.SERVING);
    h.kube.pingError = new PaasError("unavailable", "connection refused");
    await h.monitor.check();
    expect((await h.health.check({ service: "" })).status).toBe(Serving.NOT_SERVING);
    h.kube.pingError = undefined;
    h.helm.errors.version = new Error("helm missing");
    await h.monitor.check();
    expect((await h.health.check({ service: "" })).status).toBe(Serving.NOT_SERVING);
  });

  it("is NOT_FOUND for an unknown service", async () => {
    const h = await createHarness();
    expect((await failure(h.health.check({ service: "no.Such" }))).code).toBe(Code.NotFound);
  });

  it("Watch sends the status, then changes, and NOT_SERVING then ends on shutdown", async () => {
    const h = await createHarness();
    const seen: Serving[] = [];
    const done = (async () => {
      for await (const m of h.health.watch({ service: "" })) {
        seen.push(m.status);
        if (seen.length === 1) {
          h.kube.pingError = new Error("down");
          await h.monitor.check();
        } else if (seen.length === 2) {
          h.kube.pingError = undefined;
          await h.monitor.check();
        } else if (seen.length === 3) {
          h.lifecycle.startDraining();
          h.monitor.notify();
        }
      }
    })();
    await done;
    expect(seen).toEqual([Serving.SERVING, Serving.NOT_SERVING, Serving.SERVING, Serving.NOT_SERVING]);
  });
});

describe("Reflection", () => {
  it("lists the services and returns file descriptors with their dependencies", async () => {
    const h = await createHarness();
    const client = createClient(ServerReflection, createRouterTransport(h.app.routes, { router: { interceptors: h.app.interceptors } }));
    async function* requests() {
      yield { host: "", messageRequest: { case: "listServices" as const, value: "" } };
      yield { host: "", messageRequest: { case: "fileContainingSymbol" as const, value: "paas.v1.ReleaseService.InstallRelease" } };
      yield { host: "", messageRequest: { case: "fileByFilename" as const, value: "nope.proto" } };
    }
    const out = [];
    for await (const res of client.serverReflectionInfo(requests())) out.push(res);
    expect(out[0]?.messageResponse.case).toBe("listServicesResponse");
    const names = out[0]?.messageResponse.case === "listServicesResponse" ? out[0].messageResponse.value.service.map((s) => s.name) : [];
    expect(names).toEqual(["paas.v1.ReleaseService", "paas.v1.NamespaceService", "paas.v1.OperationService", "paas.v1.AuditService", "grpc.health.v1.Health"]);
    expect(out[1]?.messageResponse.case).toBe("fileDescriptorResponse");
    const files = out[1]?.messageResponse.case === "fileDescriptorResponse" ? out[1].messageResponse.value.fileDescriptorProto.length : 0;
    expect(files).toBeGreaterThanOrEqual(5); // release.proto + annotations, http, descriptor, duration, struct, timestamp
    expect(out[2]?.messageResponse.case).toBe("errorResponse");
  });
});
