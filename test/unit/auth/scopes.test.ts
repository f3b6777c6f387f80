import { describe, expect, it } from "vitest";
import { OperationService } from "../../../gen/paas/v1/operation_pb.js";
import { AuditService } from "../../../gen/paas/v1/audit_pb.js";
import { WebhookService } from "../../../gen/paas/v1/webhook_pb.js";
import { NamespaceService } from "../../../gen/paas/v1/namespace_pb.js";
import { ReleaseService } from "../../../gen/paas/v1/release_pb.js";
import { WorkloadService } from "../../../gen/paas/v1/workload_pb.js";
import { RPC_RULES, Scope } from "../../../src/auth/scopes.ts";

describe("RPC_RULES", () => {
  it("gives every RPC of the protected services a verb: Get*, List*, Watch* read; the rest by the issue's table", () => {
    const expected: Record<string, string> = {
      InstallRelease: "deploy",
      UpgradeRelease: "deploy",
      RollbackRelease: "deploy",
      RecoverRelease: "deploy",
      UninstallRelease: "delete",
      CreateNamespace: "namespace-admin",
      DeleteNamespace: "namespace-admin",
      // Needs read to see the operation; the handler checks the operation's own verb too.
      CancelOperation: "read",
      WaitOperation: "read",
      // Day-2 actions on workloads: a verb read-only and deploy-only keys lack.
      ScaleWorkload: "operate",
      RestartWorkload: "operate",
      DeletePod: "operate",
      DeletePersistentVolumeClaim: "operate",
      RebuildStatefulSetMember: "operate",
      // Sends a delivery again; the handler also requires an unrestricted key.
      RedeliverWebhook: "deploy",
    };
    const methods = [
      ...ReleaseService.methods,
      ...NamespaceService.methods,
      ...OperationService.methods,
      ...AuditService.methods,
      ...WorkloadService.methods,
      ...WebhookService.methods,
    ].map((m) => `${m.parent.typeName}/${m.name}`);
    expect(Object.keys(RPC_RULES).sort()).toEqual([...methods].sort());
    for (const rpc of methods) {
      const name = rpc.split("/")[1]!;
      const verb = expected[name] ?? (/^(Get|List|Watch)/.test(name) ? "read" : "?");
      expect(RPC_RULES[rpc]!.verb, rpc).toBe(verb);
      // Every call but the two lists that span namespaces names its namespace (those filter their answer).
      expect(RPC_RULES[rpc]!.namespaceField === undefined, rpc).toBe(
        name === "ListNamespaces" ||
          name === "ListAuditEvents" ||
          rpc.startsWith("paas.v1.OperationService/") ||
          rpc.startsWith("paas.v1.WebhookService/"),
      );
    }
    expect(RPC_RULES["paas.v1.ReleaseService/InstallRelease"]!.also?.({ createNamespace: true })).toBe(
      "namespace-admin",
    );
    expect(RPC_RULES["paas.v1.ReleaseService/InstallRelease"]!.also?.({ createNamespace: false })).toBeUndefined();
  });

  it("Scope.ALL is unrestricted, Scope.NONE allows nothing", () => {
    expect(Scope.ALL.unrestricted).toBe(true);
    expect(Scope.ALL.allowsNamespace("paas-ws-anything")).toBe(true);
    expect(Scope.NONE.allowsNamespace("paas-ws-a")).toBe(false);
    expect(Scope.NONE.allowsVerb("read")).toBe(false);
    expect(new Scope(["*"], ["read"]).unrestricted).toBe(false);
  });
});
