import { describe, expect, it } from "vitest";
import {
  clusterMinor,
  deployerUser,
  networkPolicyManifest,
  podSecurityLabels,
  roleBindingManifest,
  subjectForUser,
} from "../../../../src/kube/tenancy/tenant-objects.ts";

const labels = { "app.kubernetes.io/managed-by": "paas-operator" };

describe("tenant manifests", () => {
  it("default-deny NetworkPolicy: same-namespace traffic and DNS to kube-dns only", () => {
    expect(networkPolicyManifest("paas-ws-a", labels)).toEqual({
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "paas-default-deny", namespace: "paas-ws-a", labels },
      spec: {
        podSelector: {},
        policyTypes: ["Ingress", "Egress"],
        ingress: [{ from: [{ podSelector: {} }] }],
        egress: [
          { to: [{ podSelector: {} }] },
          {
            to: [
              {
                namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } },
                podSelector: { matchLabels: { "k8s-app": "kube-dns" } },
              },
            ],
            ports: [
              { protocol: "UDP", port: 53 },
              { protocol: "TCP", port: 53 },
            ],
          },
        ],
      },
    });
  });

  it("Pod Security: enforce the level pinned to the cluster's minor, warn and audit restricted:latest", () => {
    expect(podSecurityLabels("baseline", "v1.36")).toEqual({
      "pod-security.kubernetes.io/enforce": "baseline",
      "pod-security.kubernetes.io/enforce-version": "v1.36",
      "pod-security.kubernetes.io/warn": "restricted",
      "pod-security.kubernetes.io/warn-version": "latest",
      "pod-security.kubernetes.io/audit": "restricted",
      "pod-security.kubernetes.io/audit-version": "latest",
    });
    expect(clusterMinor({ major: "1", minor: "36+" })).toBe("v1.36");
    expect(clusterMinor({})).toBe("latest");
    expect(clusterMinor(undefined)).toBe("latest");
  });

  it("RoleBinding subjects: ServiceAccounts by kind, anyone else as a User", () => {
    expect(subjectForUser("system:serviceaccount:paas-system:paas-operator")).toEqual({
      kind: "ServiceAccount",
      namespace: "paas-system",
      name: "paas-operator",
    });
    expect(subjectForUser("kubernetes-admin")).toEqual({
      kind: "User",
      apiGroup: "rbac.authorization.k8s.io",
      name: "kubernetes-admin",
    });
    expect(
      roleBindingManifest(
        "paas-ws-a",
        "paas-deployer",
        "paas-tenant-deployer",
        subjectForUser(deployerUser("paas-ws-a")),
        labels,
      ),
    ).toMatchObject({
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "paas-tenant-deployer" },
      subjects: [{ kind: "ServiceAccount", namespace: "paas-ws-a", name: "paas-deployer" }],
    });
  });
});
