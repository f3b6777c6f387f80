import { CoreV1Api, type KubeConfig, type V1Namespace } from "@kubernetes/client-node";
import { PaasError } from "../../errors.ts";
import type { GuardPolicy } from "../../helm/render-guard.ts";
import type { TenantAccess } from "../../helm/tenant-access.ts";
import { httpCodeOf, kubeError } from "../api/api-errors.ts";
import { DiscoveryCache, fetchKindScopes } from "../api/discovery.ts";
import { createApi } from "../api/api-http.ts";
import { assertNamespaceName } from "../../domain/names.ts";
import { enforcedLevel } from "../../domain/pod-security-levels.ts";
import { isReady, type ManagedLabel, podSecurityOf } from "./namespaces.ts";
import { LIMIT_RANGE_NAME, QUOTA_NAME } from "./quota.ts";
import { DEPLOYER_BINDING, DEPLOYER_SERVICE_ACCOUNT, deployerUser, OPERATOR_BINDING } from "./tenant-objects.ts";

/** TenantAccessOptions configure createTenantAccess. */
export interface TenantAccessOptions {
  kubeConfig: KubeConfig;
  managedLabel: ManagedLabel;
  /** Deadline of one API request. Default 30 s. */
  requestTimeoutMs?: number;
  /** How long API discovery is reused. Default 5 minutes (and refreshed early when the guard meets an unknown kind). */
  discoveryTtlMs?: number;
}

/**
 * RESERVED are the objects ensureNamespace puts into every tenant namespace; a chart may
 * not bring its own (helm would refuse to adopt them anyway; this says why).
 */
export const RESERVED: Record<string, string[]> = {
  "/ServiceAccount": [DEPLOYER_SERVICE_ACCOUNT],
  "rbac.authorization.k8s.io/RoleBinding": [DEPLOYER_BINDING, OPERATOR_BINDING],
  "/ResourceQuota": [QUOTA_NAME],
  "/LimitRange": [LIMIT_RANGE_NAME],
};

/**
 * DROPPED kinds are removed from charts rather than refused: tenants get no NetworkPolicy
 * rights (an allow rule of theirs would undo the namespace's default deny), yet many
 * charts (most Bitnami ones) ship a NetworkPolicy by default. The namespace's own policy
 * (same-namespace traffic and DNS) applies instead.
 */
export const DROPPED = ["networking.k8s.io/NetworkPolicy"];

/** createTenantAccess implements the helm adapter's TenantAccess over the API server. */
export function createTenantAccess(opts: TenantAccessOptions): TenantAccess {
  const timeout = opts.requestTimeoutMs ?? 30_000;
  const api = createApi(opts.kubeConfig, timeout, CoreV1Api);
  const discovery = new DiscoveryCache({
    load: (signal) => fetchKindScopes(opts.kubeConfig, signal),
    ttlMs: opts.discoveryTtlMs,
    timeoutMs: timeout,
  });
  const { key, value } = opts.managedLabel;

  return {
    userFor: deployerUser,

    async prepareWrite(namespace): Promise<GuardPolicy> {
      assertNamespaceName(namespace);
      let ns: V1Namespace;
      try {
        ns = await api.readNamespace({ name: namespace });
      } catch (err) {
        if (httpCodeOf(err) === 404) throw new PaasError("not_found", `namespace "${namespace}" not found`);
        throw kubeError(err, `read namespace "${namespace}"`);
      }
      if (ns.metadata?.labels?.[key] !== value) throw new PaasError("not_found", `namespace "${namespace}" not found`);
      if (ns.metadata?.deletionTimestamp || ns.status?.phase === "Terminating") {
        throw new PaasError("failed_precondition", `namespace ${namespace} is being deleted`);
      }
      if (!isReady(ns)) {
        throw new PaasError(
          "failed_precondition",
          `namespace ${namespace} is not fully provisioned; call CreateNamespace again`,
        );
      }
      return {
        namespace,
        scopes: await discovery.get(),
        podSecurity: enforcedLevel(podSecurityOf(ns)),
        reserved: RESERVED,
        drop: DROPPED,
      };
    },

    refreshDiscovery() {
      discovery.invalidate();
    },
  };
}
