// The Pod Security Standards this service enforces in tenant namespaces: POD_SECURITY_LEVEL
// at start, CreateNamespace's pod_security per namespace, and ensureNamespace itself check
// them here. "privileged" is not offered (the render guard still understands it when a
// namespace carries it: src/helm/pod-security.ts).

/** PodSecurityLevel is a Pod Security Standard a tenant namespace may enforce. */
export type PodSecurityLevel = "restricted" | "baseline";

/** POD_SECURITY_LEVELS are the levels offered, strictest (the default) first. */
export const POD_SECURITY_LEVELS: readonly PodSecurityLevel[] = ["restricted", "baseline"];

/** isPodSecurityLevel tells whether `s` is one of POD_SECURITY_LEVELS (exactly, lowercase). */
export function isPodSecurityLevel(s: string): s is PodSecurityLevel {
  return (POD_SECURITY_LEVELS as readonly string[]).includes(s);
}
