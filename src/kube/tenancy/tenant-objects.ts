// What makes a namespace a tenant: besides the quota and LimitRange (quota.ts), the
// identity helm runs as, the Pod Security labels, a default-deny NetworkPolicy and the
// "ready" label that is set last. Pure manifests and names; namespaces.ts applies them.

import type { PodSecurityLevel } from "../../domain/pod-security-levels.ts";

/** DEPLOYER_SERVICE_ACCOUNT is the ServiceAccount every helm run impersonates in its namespace. */
export const DEPLOYER_SERVICE_ACCOUNT = "paas-deployer";
/** DEPLOYER_BINDING binds the deployer to the tenant ClusterRole inside its namespace. */
export const DEPLOYER_BINDING = "paas-deployer";
/** OPERATOR_BINDING gives the operator's own identity its reads (pods, Helm storage Secrets) in the namespace. */
export const OPERATOR_BINDING = "paas-operator";
/** NETWORK_POLICY_NAME is the default-deny policy (same-namespace traffic and DNS allowed). */
export const NETWORK_POLICY_NAME = "paas-default-deny";
/** READY_LABEL is set to "true" once every provisioning step has succeeded; helm writes need it. */
export const READY_LABEL = "paas.io/ready";

/** TenantRoles names the two ClusterRoles shipped in k8s/rbac.yaml that tenant RoleBindings refer to. */
export interface TenantRoles {
  /** What helm may do in a tenant namespace (bound to the deployer ServiceAccount). */
  deployer: string;
  /** What the operator itself reads in a tenant namespace (bound to the operator's identity). */
  operator: string;
}

/** DEFAULT_TENANT_ROLES are the names in k8s/rbac.yaml. */
export const DEFAULT_TENANT_ROLES: TenantRoles = { deployer: "paas-tenant-deployer", operator: "paas-operator-tenant" };

/** PSA_ENFORCE is the Pod Security Admission label that decides; the render guard reads it too. */
export const PSA_ENFORCE = "pod-security.kubernetes.io/enforce";

/**
 * podSecurityLabels enforces `level` pinned to `version` (the cluster's minor at creation,
 * e.g. "v1.36", so that a cluster upgrade never starts refusing pods that were accepted),
 * and warns and audits against the latest "restricted" profile: callers see in helm's
 * warnings what a stricter level would refuse.
 */
export function podSecurityLabels(level: PodSecurityLevel, version: string): Record<string, string> {
  return {
    [PSA_ENFORCE]: level,
    "pod-security.kubernetes.io/enforce-version": version,
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/warn-version": "latest",
    "pod-security.kubernetes.io/audit": "restricted",
    "pod-security.kubernetes.io/audit-version": "latest",
  };
}

/** namespaceApply is the server-side apply body of the Namespace's labels. */
export function namespaceApply(name: string, labels: Record<string, string>): Record<string, unknown> {
  return { apiVersion: "v1", kind: "Namespace", metadata: { name, labels } };
}

/**
 * networkPolicyManifest denies all ingress and egress of every pod in the namespace except
 * traffic between the namespace's own pods and DNS to kube-system's kube-dns pods (UDP and
 * TCP 53); tenantNetworkPolicy (namespaces.ts) adds ingress from the ingress controller's
 * namespaces (INGRESS_NAMESPACE_SELECTOR). Tenants get no NetworkPolicy rights (policies are additive: any allow rule of
 * theirs would undo this one), and the render guard drops the ones charts bring.
 */
export function networkPolicyManifest(namespace: string, labels: Record<string, string>): Record<string, unknown> {
  const sameNamespace = [{ podSelector: {} }];
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name: NETWORK_POLICY_NAME, namespace, labels },
    spec: {
      podSelector: {},
      policyTypes: ["Ingress", "Egress"],
      ingress: [{ from: sameNamespace }],
      egress: [
        { to: sameNamespace },
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
  };
}

/**
 * deployerServiceAccountManifest: the identity helm impersonates. Its token is not mounted
 * into pods that merely name it (a chart could still ask for it explicitly: that gives a
 * pod the deployer's rights in its own namespace only).
 */
export function deployerServiceAccountManifest(
  namespace: string,
  labels: Record<string, string>,
): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name: DEPLOYER_SERVICE_ACCOUNT, namespace, labels },
    automountServiceAccountToken: false,
  };
}

/** RbacSubject is a RoleBinding subject. */
export type RbacSubject =
  { kind: "ServiceAccount"; name: string; namespace: string } | { kind: "User"; apiGroup: string; name: string };

/** subjectForUser turns an authenticated user name into a RoleBinding subject (ServiceAccounts have their own kind). */
export function subjectForUser(username: string): RbacSubject {
  const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(username);
  if (m) return { kind: "ServiceAccount", namespace: m[1]!, name: m[2]! };
  return { kind: "User", apiGroup: "rbac.authorization.k8s.io", name: username };
}

/** roleBindingManifest binds one ClusterRole to one subject inside `namespace`. */
export function roleBindingManifest(
  namespace: string,
  name: string,
  clusterRole: string,
  subject: RbacSubject,
  labels: Record<string, string>,
): Record<string, unknown> {
  return {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: { name, namespace, labels },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: clusterRole },
    subjects: [subject],
  };
}

/** deployerUser is the user name helm impersonates in `namespace`. */
export function deployerUser(namespace: string): string {
  return `system:serviceaccount:${namespace}:${DEPLOYER_SERVICE_ACCOUNT}`;
}

/** clusterMinor turns a /version answer into "v1.36" (Pod Security's version format), or "latest". */
export function clusterMinor(version: { major?: string; minor?: string } | undefined): string {
  const major = /^\d+/.exec(version?.major ?? "")?.[0];
  const minor = /^\d+/.exec(version?.minor ?? "")?.[0];
  return major && minor ? `v${major}.${minor}` : "latest";
}
