import { createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ServerReflection } from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import { createHarness } from "../../support/harness.ts";

describe("Reflection", () => {
  it("lists the services and returns file descriptors with their dependencies", async () => {
    const h = await createHarness();
    const client = createClient(
      ServerReflection,
      createRouterTransport(h.app.routes, { router: { interceptors: h.app.interceptors } }),
    );
    async function* requests() {
      yield { host: "", messageRequest: { case: "listServices" as const, value: "" } };
      yield {
        host: "",
        messageRequest: { case: "fileContainingSymbol" as const, value: "paas.v1.ReleaseService.InstallRelease" },
      };
      yield { host: "", messageRequest: { case: "fileByFilename" as const, value: "nope.proto" } };
    }
    const out = [];
    for await (const res of client.serverReflectionInfo(requests())) out.push(res);
    expect(out[0]?.messageResponse.case).toBe("listServicesResponse");
    const names =
      out[0]?.messageResponse.case === "listServicesResponse"
        ? out[0].messageResponse.value.service.map((s) => s.name)
        : [];
    expect(names).toEqual([
      "paas.v1.ReleaseService",
      "paas.v1.NamespaceService",
      "paas.v1.OperationService",
      "paas.v1.AuditService",
      "paas.v1.WebhookService",
      "grpc.health.v1.Health",
    ]);
    expect(out[1]?.messageResponse.case).toBe("fileDescriptorResponse");
    const files =
      out[1]?.messageResponse.case === "fileDescriptorResponse"
        ? out[1].messageResponse.value.fileDescriptorProto.length
        : 0;
    expect(files).toBeGreaterThanOrEqual(5); // release.proto + annotations, http, descriptor, duration, struct, timestamp
    expect(out[2]?.messageResponse.case).toBe("errorResponse");
  });
});
