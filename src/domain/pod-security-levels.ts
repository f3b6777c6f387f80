// The Pod Security Standards: the ones this service enforces in tenant namespaces
// (POD_SECURITY_LEVEL at start, CreateNamespace's pod_security per namespace and
// ensureNamespace itself check them here), and the one a namespace's enforce label names
// (what the render guard checks pods against, src/helm/pod-security.ts).

/** PodSecurityLevel is a Pod Security Standard a tenant namespace may enforce. */
export type PodSecurityLevel = "restricted" | "baseline";

/** POD_SECURITY_LEVELS are the levels offered, strictest (the default) first. */
export const POD_SECURITY_LEVELS: readonly PodSecurityLevel[] = ["restricted", "baseline"];

/** isPodSecurityLevel tells whether `s` is one of POD_SECURITY_LEVELS (exactly, lowercase). */
export function isPodSecurityLevel(s: string): s is PodSecurityLevel {
  return (POD_SECURITY_LEVELS as readonly string[]).includes(s);
}

/** EnforcedLevel is the level a namespace enforces: "privileged" (or "": none, or unknown) checks nothing. */
export type EnforcedLevel = PodSecurityLevel | "privileged" | "";

/** enforcedLevel reads a pod-security.kubernetes.io/enforce label value ("" when absent or unknown). */
export function enforcedLevel(label: string): EnforcedLevel {
  return isPodSecurityLevel(label) || label === "privileged" ? label : "";
}
