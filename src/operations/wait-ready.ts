import { PaasError } from "../errors.ts";
import type { KubeClient, PodInfo } from "../kube/kube-types.ts";
import type { WorkloadReplicas } from "../kube/watch/workload-replicas.ts";
import type { ProgressRecord } from "../domain/operation.ts";
import type { VerbRun } from "./verb.ts";

/** ReadinessFollower reports an operation's wait-ready step while helm waits for the release. */
export interface ReadinessFollower {
  /** Ends the step (helm's wait ended) and the watch. */
  stop(ok: boolean): Promise<void>;
}

/**
 * followReadiness watches the release's pods (the same watch WatchReleaseStatus streams)
 * while helm applies and waits (`wait`): the first pod change after `apply` began ends that
 * step and starts `wait-ready`, whose progress is the pods ready against those the new
 * manifest's workloads ask for, per workload. Nothing is polled: pods come from the watch,
 * the workloads from one read of the release's storage when the wait begins.
 */
export function followReadiness(
  kube: Pick<KubeClient, "watchRelease" | "releaseWorkloads">,
  namespace: string,
  release: string,
  run: VerbRun,
): ReadinessFollower {
  const abort = new AbortController();
  const pods = new Map<string, PodInfo>();
  let waiting = false;
  let workloads: WorkloadReplicas[] = [];
  let latest: ProgressRecord | undefined;
  let pending = Promise.resolve();

  const report = () => {
    latest = progressOf(workloads, [...pods.values()]);
    run.progress(latest);
  };
  const changed = () => {
    // Pods that change before helm applies anything are not this operation's doing.
    if (!waiting && !run.steps.isRunning("apply")) return;
    if (!waiting) {
      waiting = true;
      run.steps.end("apply");
      run.steps.begin("wait-ready", "waiting for the release's pods");
      pending = kube.releaseWorkloads(namespace, release).then(
        (w) => {
          workloads = w;
        },
        () => undefined,
      );
    }
    void pending.then(report);
  };

  const loop = (async () => {
    let first = true;
    for await (const event of kube.watchRelease(namespace, release, abort.signal)) {
      switch (event.kind) {
        case "snapshot":
          pods.clear();
          for (const p of event.pods) pods.set(p.name, p);
          if (!first) changed();
          first = false;
          break;
        case "pod_added":
        case "pod_modified":
          pods.set(event.pod.name, event.pod);
          changed();
          break;
        case "pod_deleted":
          pods.delete(event.pod.name);
          changed();
          break;
        default:
          break;
      }
    }
  })().catch(() => undefined);

  return {
    async stop(ok: boolean) {
      abort.abort();
      await loop;
      await pending;
      if (!waiting) return;
      if (ok) report();
      const p = latest;
      const reason: unknown = run.signal.reason;
      const cancelled = run.signal.aborted && reason instanceof PaasError && reason.kind === "cancelled";
      run.steps.end(
        "wait-ready",
        p ? `${p.podsReady}/${p.podsDesired} pods ready` : "",
        ok ? "succeeded" : cancelled ? "cancelled" : "failed",
      );
    },
  };
}

/**
 * progressOf counts ready pods per workload: a workload's pods are named after it
 * (Deployment pods "<name>-<hash>-<id>", StatefulSet pods "<name>-<ordinal>"), and a
 * workload's count is capped at what it asks for (old pods of a rolling update stay ready
 * for a while). A DaemonSet asks for as many as it has pods.
 */
export function progressOf(workloads: readonly WorkloadReplicas[], pods: readonly PodInfo[]): ProgressRecord {
  const counts = workloads.map((w) => {
    const own = pods.filter((p) => p.name.startsWith(`${w.name}-`));
    const desired = w.replicas ?? own.length;
    const ready = Math.min(desired, own.filter((p) => p.ready).length);
    return { kind: w.kind, name: w.name, ready, desired };
  });
  if (counts.length === 0) {
    const ready = pods.filter((p) => p.ready).length;
    return { podsReady: ready, podsDesired: pods.length, workloads: [] };
  }
  return {
    podsReady: counts.reduce((n, c) => n + c.ready, 0),
    podsDesired: counts.reduce((n, c) => n + c.desired, 0),
    workloads: counts,
  };
}
