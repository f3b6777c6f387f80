import { loadYaml, type V1LabelSelector } from "@kubernetes/client-node";
import { selectorMatches } from "../../domain/selectors.ts";

// Which pods a release's workloads run. Many charts label pods with
// app.kubernetes.io/instance=<release>, but not all: podinfo 6.x, for one, labels them
// only app.kubernetes.io/name=<release>-podinfo. The release's manifest (kept in
// Helm's storage) names its workloads, and each workload's pod selector says which
// pods are its own, whatever the chart's labelling habits.

/** PodMatcher picks the pods of one workload: a label selector, or the name of a bare Pod. */
export type PodMatcher = { selector: V1LabelSelector } | { podName: string };

interface WorkloadLike {
  kind?: string;
  metadata?: { name?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: {
    selector?: V1LabelSelector;
    template?: { metadata?: { labels?: Record<string, string> } };
    jobTemplate?: { spec?: { template?: { metadata?: { labels?: Record<string, string> } } } };
  };
}

const SELECTOR_KINDS = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController"]);

// An empty selector would match every pod of the namespace; Kubernetes refuses it for
// workloads, and so do we.
function nonEmpty(sel: V1LabelSelector | undefined): sel is V1LabelSelector {
  return !!sel && (Object.keys(sel.matchLabels ?? {}).length > 0 || (sel.matchExpressions ?? []).length > 0);
}

function labelsSelector(labels: Record<string, string> | undefined): V1LabelSelector | undefined {
  return labels && Object.keys(labels).length > 0 ? { matchLabels: labels } : undefined;
}

/** matcherOf returns the PodMatcher of one manifest object, or undefined when it runs no pods. */
export function matcherOf(obj: WorkloadLike): PodMatcher | undefined {
  const kind = obj.kind ?? "";
  // Hooks (tests, migrations) run and go; they are not what the release keeps running.
  // Helm stores them apart from the manifest anyway, but `helm template` output mixes them in.
  if (obj.metadata?.annotations?.["helm.sh/hook"]) return undefined;
  let sel: V1LabelSelector | undefined;
  if (SELECTOR_KINDS.has(kind)) sel = obj.spec?.selector;
  // A Job's selector is usually generated (controller-uid); its template labels are the chart's.
  else if (kind === "Job") sel = labelsSelector(obj.spec?.template?.metadata?.labels) ?? obj.spec?.selector;
  else if (kind === "CronJob") sel = labelsSelector(obj.spec?.jobTemplate?.spec?.template?.metadata?.labels);
  else if (kind === "Pod" && obj.metadata?.name) return { podName: obj.metadata.name };
  return nonEmpty(sel) ? { selector: sel } : undefined;
}

/**
 * podMatchersFromManifest reads a release manifest (YAML documents separated by ---)
 * and returns a matcher per workload. A document that does not parse is skipped: the
 * other workloads still count.
 */
export function podMatchersFromManifest(manifest: string): PodMatcher[] {
  const out: PodMatcher[] = [];
  for (const doc of manifest.split(/^---[ \t]*$/m)) {
    if (!/^[ \t]*[^#\s]/m.test(doc)) continue; // comments only (e.g. a template that rendered empty)
    let obj: unknown;
    try {
      obj = loadYaml<unknown>(doc);
    } catch {
      continue;
    }
    const m = typeof obj === "object" && obj !== null ? matcherOf(obj as WorkloadLike) : undefined;
    if (m) out.push(m);
  }
  return out;
}

/** matchesAny tells whether a pod belongs to one of the workloads. */
export function matchesAny(matchers: readonly PodMatcher[], name: string, labels: Record<string, string>): boolean {
  return matchers.some((m) => ("podName" in m ? m.podName === name : selectorMatches(m.selector, labels)));
}
