import { matchesAny, type PodMatcher } from "./workload-pods.ts";

// Which pods belong to a release. A pod is the release's when
//  - it carries app.kubernetes.io/instance=<release> (the recommended label), or
//  - it has no instance label and carries release=<release> (charts from before Helm 3), or
//  - a workload of the release's manifest selects it (charts that use neither label:
//    podinfo 6.x labels its pods app.kubernetes.io/name=<release>-podinfo only).
// A pod's instance label, when present, names its release: a pod of "b" that happens to
// carry release=a is b's. No server-side label selector expresses this union, so callers
// list or watch the namespace's pods and filter with isReleasePod.

/** INSTANCE_LABEL is the recommended label that names a pod's release. */
export const INSTANCE_LABEL = "app.kubernetes.io/instance";
/** LEGACY_RELEASE_LABEL is the label older charts use instead. */
export const LEGACY_RELEASE_LABEL = "release";

/** PodIdentity is what release membership looks at: a pod's name and labels. */
export interface PodIdentity {
  metadata?: { name?: string; labels?: Record<string, string> };
}

/** isReleasePod tells whether a pod belongs to the release, given the pod matchers of its manifest. */
export function isReleasePod(pod: PodIdentity, release: string, matchers: readonly PodMatcher[] = []): boolean {
  const labels = pod.metadata?.labels ?? {};
  const instance = labels[INSTANCE_LABEL];
  if (instance === release) return true;
  if (instance === undefined && labels[LEGACY_RELEASE_LABEL] === release) return true;
  return matchesAny(matchers, pod.metadata?.name ?? "", labels);
}

/** helmStorageSelector selects the storage Secrets of one release (Helm's own labels). */
export function helmStorageSelector(release: string): string {
  return `owner=helm,name=${release}`;
}
