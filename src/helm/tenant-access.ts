import type { GuardPolicy } from "./render-guard.ts";

/**
 * TenantAccess is what the helm adapter needs to run helm as a tenant: which user to
 * impersonate in a namespace, and, before every write, whether the namespace may be
 * written and the render guard's policy for it. The kube adapter implements it
 * (src/kube/tenancy/kube-tenant-access.ts); helm itself never talks to the API server for this.
 */
export interface TenantAccess {
  /** The user every helm run in `namespace` impersonates (--kube-as-user). */
  userFor(namespace: string): string;
  /**
   * Called before install, upgrade, rollback and uninstall: throws (FAILED_PRECONDITION,
   * NOT_FOUND) unless the namespace is a fully provisioned tenant namespace, and returns
   * the policy the render guard checks the chart against.
   */
  prepareWrite(namespace: string): Promise<GuardPolicy>;
  /** The guard met a kind discovery did not list: the next prepareWrite reads discovery again. */
  refreshDiscovery(): void;
}
