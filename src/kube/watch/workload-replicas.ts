import { loadYaml } from "@kubernetes/client-node";

// How many pods a release's workloads ask for, from its manifest: what an operation that
// waits for the release (helm --wait) counts its ready pods against.

/** WorkloadReplicas is one workload of a manifest and the pods it wants (undefined: as many as nodes, a DaemonSet). */
export interface WorkloadReplicas {
  kind: string;
  name: string;
  replicas: number | undefined;
}

const COUNTED = new Set(["Deployment", "StatefulSet", "ReplicaSet", "DaemonSet"]);

/** workloadsFromManifest reads the workloads of a manifest (YAML documents separated by ---); hooks are skipped. */
export function workloadsFromManifest(manifest: string): WorkloadReplicas[] {
  const out: WorkloadReplicas[] = [];
  for (const doc of manifest.split(/^---[ \t]*$/m)) {
    if (!/^[ \t]*[^#\s]/m.test(doc)) continue;
    let obj:
      | {
          kind?: string;
          metadata?: { name?: string; annotations?: Record<string, string> };
          spec?: { replicas?: unknown };
        }
      | undefined;
    try {
      obj = loadYaml(doc) as typeof obj;
    } catch {
      continue;
    }
    const kind = obj?.kind ?? "";
    const name = obj?.metadata?.name ?? "";
    if (!COUNTED.has(kind) || !name || obj?.metadata?.annotations?.["helm.sh/hook"]) continue;
    // Kubernetes defaults spec.replicas to 1.
    const replicas = kind === "DaemonSet" ? undefined : typeof obj?.spec?.replicas === "number" ? obj.spec.replicas : 1;
    out.push({ kind, name, replicas });
  }
  return out;
}
