import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ReleaseService } from "../../../gen/paas/v1/release_pb.js";
import { decodeRequest, parseJsonBody } from "../../../src/rest/body.ts";
import { REST_ONLY, REST_STATUS_BY_CODE, restStatusOf, RestError } from "../../../src/rest/rest-errors.ts";
import { buildRoutes, matchRoute, OVERRIDES } from "../../../src/rest/routes.ts";

describe("the REST route table comes from the protos' google.api.http annotations", () => {
  const routes = buildRoutes();

  it("binds the old operator's paths (and the other annotated RPCs)", () => {
    const table = routes.map((r) => [
      r.verb,
      r.template,
      `${r.method.parent.name}.${r.method.name}`,
      r.status,
      r.hasBody,
    ]);
    expect(table).toEqual([
      ["POST", "/api/releases", "ReleaseService.InstallRelease", 201, true],
      ["GET", "/api/releases/{namespace}/{name}", "ReleaseService.GetRelease", 200, false],
      ["PATCH", "/api/releases/{namespace}/{name}", "ReleaseService.UpgradeRelease", 200, true],
      ["DELETE", "/api/releases/{namespace}/{name}", "ReleaseService.UninstallRelease", 200, false],
      ["POST", "/api/releases/{namespace}/{name}/rollback", "ReleaseService.RollbackRelease", 200, true],
      ["GET", "/api/releases/{namespace}/{name}/revisions", "ReleaseService.ListReleaseRevisions", 200, false],
      ["GET", "/api/releases/{namespace}/{name}/status", "ReleaseService.GetReleaseStatus", 200, false],
      ["GET", "/api/releases/{namespace}", "ReleaseService.ListReleases", 200, false],
      ["POST", "/api/releases/{namespace}/{name}/recover", "ReleaseService.RecoverRelease", 200, true],
      ["POST", "/api/namespaces", "NamespaceService.CreateNamespace", 201, true],
      ["GET", "/api/namespaces/{name}", "NamespaceService.GetNamespace", 200, false],
      ["GET", "/api/namespaces", "NamespaceService.ListNamespaces", 200, false],
      ["DELETE", "/api/namespaces/{name}", "NamespaceService.DeleteNamespace", 200, false],
      ["GET", "/api/operations/{id}", "OperationService.GetOperation", 200, false],
      ["GET", "/ops/jobs/{id}", "OperationService.GetOperation", 200, false],
      ["GET", "/api/operations", "OperationService.ListOperations", 200, false],
      ["POST", "/api/operations/{id}/wait", "OperationService.WaitOperation", 200, true],
      ["POST", "/api/operations/{id}/cancel", "OperationService.CancelOperation", 200, true],
      ["GET", "/api/audit", "AuditService.ListAuditEvents", 200, false],
      ["GET", "/ops/namespaces/{namespace}/workloads", "WorkloadService.ListWorkloads", 200, false],
      ["POST", "/ops/namespaces/{namespace}/{resource}/{name}/scale", "WorkloadService.ScaleWorkload", 200, true],
      ["POST", "/ops/namespaces/{namespace}/{resource}/{name}/restart", "WorkloadService.RestartWorkload", 200, true],
      ["DELETE", "/ops/namespaces/{namespace}/pods/{name}", "WorkloadService.DeletePod", 200, false],
      [
        "DELETE",
        "/ops/namespaces/{namespace}/persistentvolumeclaims/{name}",
        "WorkloadService.DeletePersistentVolumeClaim",
        200,
        false,
      ],
      ["POST", "/ops/jobs/pg-rebuild", "WorkloadService.RebuildStatefulSetMember", 202, true],
      ["GET", "/api/webhooks/subscriptions", "WebhookService.ListWebhookSubscriptions", 200, false],
      ["GET", "/api/webhooks/deliveries", "WebhookService.ListWebhookDeliveries", 200, false],
      ["POST", "/api/webhooks/deliveries/{id}/redeliver", "WebhookService.RedeliverWebhook", 200, true],
    ]);
  });

  it("knows which requests name their namespace in the body (400, not 403, outside the prefix)", () => {
    expect(routes.filter((r) => r.targetInBody).map((r) => r.method.name)).toEqual([
      "InstallRelease",
      "CreateNamespace",
      "RebuildStatefulSetMember",
    ]);
  });

  it("reads every non-path field from the body: path variables win", () => {
    const upgrade = routes.find((r) => r.method.name === "UpgradeRelease")!;
    expect(upgrade.bodyFields.map((f) => f.name)).toEqual([
      "chart",
      "version",
      "values",
      "reset_values",
      "reuse_values",
      "repo_url",
      "wait",
      "timeout",
      "idempotency_key",
      "async",
    ]);
    const m = matchRoute(routes, "PATCH", ["api", "releases", "paas-ws-a", "web"])!;
    const msg = decodeRequest(m.route!, m.params, {
      namespace: "kube-system",
      name: "evil",
      version: "1.2.3",
    }) as unknown as Record<string, unknown>;
    expect(msg).toMatchObject({ namespace: "paas-ws-a", name: "web", version: "1.2.3" });
  });

  it("refuses to start when an annotated RPC has no REST shape, or a shape has no annotation", () => {
    const missing = new Map([...OVERRIDES].filter(([m]) => m !== ReleaseService.method.getRelease));
    expect(() => buildRoutes(undefined, missing)).toThrow(
      /GetRelease has a google.api.http annotation but no response shape/,
    );
    const extra = new Map(OVERRIDES);
    extra.set(ReleaseService.method.watchReleaseStatus, { response: () => null });
    expect(() => buildRoutes(undefined, extra)).toThrow(
      /WatchReleaseStatus has a REST shape but no google.api.http annotation/,
    );
  });

  it("matches HEAD as GET and lists every verb of a path", () => {
    expect(matchRoute(routes, "HEAD", ["api", "releases", "a", "b"])?.route?.method.name).toBe("GetRelease");
    expect(matchRoute(routes, "OPTIONS", ["api", "releases", "a", "b"])?.allowed).toEqual(["GET", "PATCH", "DELETE"]);
    expect(matchRoute(routes, "GET", ["api", "releases", "a", ""])).toBeUndefined();
    expect(matchRoute(routes, "GET", ["api", "nope"])).toBeUndefined();
  });
});

describe("body decoding", () => {
  const routes = buildRoutes();
  const route = (name: string) => routes.find((r) => r.method.name === name)!;
  const decode = (name: string, body: unknown) => {
    const r = route(name);
    const params = new Map(r.segments.flatMap((s) => ("field" in s ? [[s.field, "x"] as const] : [])));
    return decodeRequest(r, params, body as never) as unknown as Record<string, unknown>;
  };
  const refusal = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      return err as RestError;
    }
    throw new Error("expected a refusal");
  };

  it("accepts integers as numbers or digit strings (as pydantic and proto3 JSON do), within int32", () => {
    expect(decode("RollbackRelease", { revision: 2 }).revision).toBe(2);
    expect(decode("RollbackRelease", { revision: "3" }).revision).toBe(3);
    expect(decode("RollbackRelease", { revision: 2.0 }).revision).toBe(2);
    for (const bad of ["two", 1.5, true, [], {}, "1e3", 2 ** 31]) {
      expect(refusal(() => decode("RollbackRelease", { revision: bad })).rest).toBe(REST_ONLY.unprocessable);
    }
  });

  it("reads timeout as seconds and makes it a Duration", () => {
    expect(decode("InstallRelease", { namespace: "n", name: "x", chart: "c", timeout: 90.5 }).timeout).toMatchObject({
      seconds: 90n,
      nanos: 500_000_000,
    });
    expect(decode("InstallRelease", { namespace: "n", name: "x", chart: "c", timeout: "600" }).timeout).toMatchObject({
      seconds: 600n,
    });
    expect(
      refusal(() => decode("InstallRelease", { namespace: "n", name: "x", chart: "c", timeout: -1 })).rest.status,
    ).toBe(422);
    expect(
      refusal(() => decode("InstallRelease", { namespace: "n", name: "x", chart: "c", timeout: "5m" })).rest.status,
    ).toBe(422);
  });

  it("keeps reuse_values unset unless given, and null means unset", () => {
    expect(decode("UpgradeRelease", {}).reuseValues).toBeUndefined();
    expect(decode("UpgradeRelease", { reuse_values: null }).reuseValues).toBeUndefined();
    expect(decode("UpgradeRelease", { reuse_values: false }).reuseValues).toBe(false);
  });

  it("parses bodies: empty is {}, a BOM is fine, anything but an object is refused", () => {
    expect(parseJsonBody(new Uint8Array())).toEqual({});
    expect(parseJsonBody(Buffer.from('\ufeff{"a":1}'))).toEqual({ a: 1 });
    for (const bad of ["null", "1", '"x"', "[]", "{", "{'a':1}"])
      expect(refusal(() => parseJsonBody(Buffer.from(bad))).rest.status).toBe(422);
  });
});

describe("the gRPC code → REST status table", () => {
  it("has a row for every code, all 4xx/5xx with an error_type", () => {
    for (const code of Object.values(Code).filter((c): c is Code => typeof c === "number")) {
      if (code === (0 as Code)) continue;
      const row = REST_STATUS_BY_CODE[code];
      expect(row, Code[code]).toBeDefined();
      expect(row.status).toBeGreaterThanOrEqual(400);
      expect(row.errorType).toMatch(/^[a-z_]+$/);
    }
  });

  it("renders the documented statuses", () => {
    const s = (c: Code, inBody = false) => Object.values(restStatusOf(c, inBody)).join(" ");
    expect(s(Code.InvalidArgument)).toBe("400 validation_error");
    expect(s(Code.FailedPrecondition)).toBe("400 failed_precondition");
    expect(s(Code.Unauthenticated)).toBe("401 unauthorized");
    expect(s(Code.PermissionDenied)).toBe("403 forbidden");
    expect(s(Code.PermissionDenied, true)).toBe("400 validation_error");
    expect(s(Code.ResourceExhausted)).toBe("403 quota_exceeded");
    expect(s(Code.NotFound)).toBe("404 not_found");
    expect(s(Code.AlreadyExists)).toBe("409 conflict");
    expect(s(Code.Aborted)).toBe("409 conflict");
    expect(s(Code.Internal)).toBe("500 internal_error");
    expect(s(Code.Unknown)).toBe("500 internal_error");
    expect(s(Code.Unavailable)).toBe("503 service_unavailable");
    expect(s(Code.DeadlineExceeded)).toBe("504 timeout");
  });
});
