import type { V1Pod } from "@kubernetes/client-node";
import { samePodInfo, summarizePod } from "./pod-status.ts";
import { isReleasePod } from "./release-pods.ts";
import type { PodInfo, ReleaseWatchEvent } from "../kube-types.ts";
import type { PodMatcher } from "./workload-pods.ts";

// Every pod of the namespace is tracked (summarised, with its labels), because whether a
// pod belongs to the release depends on the release's manifest (see selectors.ts), which
// is only known once its newest revision is decoded, and may change with it. Membership
// is therefore decided when an event is computed, not when a watch event arrives.

interface TrackedPod {
  info: PodInfo;
  labels: Record<string, string>;
}

type PodEvent = Extract<ReleaseWatchEvent, { pod: PodInfo }>;

/** PodTracker holds the namespace's pods against the release pods the caller has been told about. */
export class PodTracker {
  private readonly release: string;
  /** Called with a pod name whenever what the caller should hear about that pod may have changed. */
  private readonly touch: (name: string) => void;
  private readonly pods = new Map<string, TrackedPod>();
  /** Final summaries of pods the caller knows and that were deleted since. */
  private readonly gone = new Map<string, PodInfo>();
  private readonly sent = new Map<string, PodInfo>();
  private matchers: readonly PodMatcher[] = [];
  private matchersKey = "[]";

  constructor(release: string, touch: (name: string) => void) {
    this.release = release;
    this.touch = touch;
  }

  /** sync replaces the known pods with a full list of the namespace's pods (first list or re-list). */
  sync(items: V1Pod[]): void {
    const fresh = new Set(items.map((p) => p.metadata?.name));
    for (const [name, tracked] of this.pods) if (!fresh.has(name)) this.remove(name, tracked.info);
    for (const p of items) this.apply("MODIFIED", p);
  }

  /** apply records one watch event of the namespace's pods. */
  apply(type: "ADDED" | "MODIFIED" | "DELETED", pod: V1Pod): void {
    const name = pod.metadata?.name;
    if (!name) return;
    if (type === "DELETED") {
      if (this.pods.has(name)) this.remove(name, summarizePod(pod));
      return;
    }
    this.pods.set(name, { info: summarizePod(pod), labels: { ...(pod.metadata?.labels ?? {}) } });
    this.gone.delete(name);
    this.touch(name);
  }

  private remove(name: string, last: PodInfo): void {
    this.pods.delete(name);
    // Only a deletion the caller must hear about is remembered: a slow caller costs
    // nothing for pods that come and go unseen.
    if (this.sent.has(name)) this.gone.set(name, last);
    this.touch(name);
  }

  /** useMatchers adopts the pod matchers of a newly sent revision; if they differ, every pod is looked at again. */
  useMatchers(matchers: readonly PodMatcher[]): void {
    const key = JSON.stringify(matchers);
    if (key === this.matchersKey) return;
    this.matchers = matchers;
    this.matchersKey = key;
    for (const name of new Set([...this.pods.keys(), ...this.sent.keys()])) this.touch(name);
  }

  /** The summary of a pod if it exists and belongs to the release (relabelling a pod away counts as deleting it). */
  private member(name: string): PodInfo | undefined {
    const t = this.pods.get(name);
    if (!t) return undefined;
    return isReleasePod({ metadata: { name, labels: t.labels } }, this.release, this.matchers) ? t.info : undefined;
  }

  /** snapshot returns the release's pods, sorted by name, and records them as sent. */
  snapshot(): PodInfo[] {
    this.sent.clear();
    this.gone.clear();
    for (const name of this.pods.keys()) {
      const info = this.member(name);
      if (info) this.sent.set(name, info);
    }
    return [...this.sent.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** eventFor compares a pod with what the caller last heard and records the answer as sent; undefined when nothing visible changed. */
  eventFor(name: string): PodEvent | undefined {
    const cur = this.member(name);
    const prev = this.sent.get(name);
    if (cur) {
      this.sent.set(name, cur);
      if (!prev) return { kind: "pod_added", pod: cur };
      return samePodInfo(prev, cur) ? undefined : { kind: "pod_modified", pod: cur };
    }
    const last = this.gone.get(name) ?? this.pods.get(name)?.info;
    this.gone.delete(name);
    if (!prev) return undefined; // came and went between two looks: nothing to tell
    this.sent.delete(name);
    return { kind: "pod_deleted", pod: last ?? prev };
  }
}
