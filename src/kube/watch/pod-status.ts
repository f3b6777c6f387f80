import type { V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
import type { PodInfo } from "../kube-types.ts";

// Pods reach us in two shapes: deserialized by client-node (timestamps are Date) from
// list calls, and raw JSON (timestamps are RFC 3339 strings) from our watch stream.
// Every timestamp therefore goes through toDate.
function toDate(value: unknown): Date | undefined {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value;
  if (typeof value === "string" && value !== "") {
    const d = new Date(value);
    return Number.isNaN(d.getTime()) ? undefined : d;
  }
  return undefined;
}

/** A terminated state's reason, or kubectl's Signal:N / ExitCode:N when the runtime gave none. */
function terminatedReason(t: { reason?: string; signal?: number; exitCode: number }): string {
  if (t.reason) return t.reason;
  if (t.signal) return `Signal:${t.signal}`;
  return `ExitCode:${t.exitCode}`;
}

/**
 * Why one container is not running-and-ready: its waiting reason (CrashLoopBackOff,
 * ImagePullBackOff, …), a failed terminated state, and, while it is down, how its
 * previous run ended (OOMKilled, Error) — the part that explains a crash loop.
 */
function containerReasons(cs: V1ContainerStatus, prefix: string): string[] {
  const out: string[] = [];
  const waiting = cs.state?.waiting;
  const terminated = cs.state?.terminated;
  if (waiting?.reason) out.push(prefix + waiting.reason);
  if (terminated && (terminated.exitCode !== 0 || (terminated.reason && terminated.reason !== "Completed"))) {
    out.push(prefix + terminatedReason(terminated));
  }
  const last = cs.lastState?.terminated;
  // Only while the container is down: an OOMKill an hour before a healthy restart is history, not a reason.
  if (last && !cs.ready && cs.restartCount > 0) out.push(prefix + terminatedReason(last));
  return out;
}

/**
 * summarizePod condenses a pod the way `kubectl get pods` reads it: ready/total counts
 * (sidecar init containers included), restarts, and the reasons it is not running or
 * not ready.
 */
export function summarizePod(pod: V1Pod): PodInfo {
  const spec = pod.spec;
  const status = pod.status ?? {};
  const sidecars = new Set((spec?.initContainers ?? []).filter((c) => c.restartPolicy === "Always").map((c) => c.name));
  const containerStatuses = status.containerStatuses ?? [];
  const initStatuses = status.initContainerStatuses ?? [];
  const totalContainers = (spec?.containers?.length ?? containerStatuses.length) + sidecars.size;

  let readyContainers = 0;
  let restarts = 0;
  const reasons: string[] = [];
  if (status.reason) reasons.push(status.reason); // Evicted, NodeLost, …

  for (const cond of status.conditions ?? []) {
    if (cond.type === "PodScheduled" && cond.status === "False" && cond.reason) reasons.push(cond.reason);
  }

  // Init containers: like kubectl, their restarts count only while the pod is initializing
  // (sidecars always count); afterwards they are history.
  const initialized = (status.conditions ?? []).some((c) => c.type === "Initialized" && c.status === "True");
  for (const cs of initStatuses) {
    const sidecar = sidecars.has(cs.name);
    if (sidecar || !initialized) restarts += cs.restartCount ?? 0;
    if (sidecar) {
      if (cs.started && cs.ready) readyContainers++;
      else reasons.push(...containerReasons(cs, "Init:"));
      continue;
    }
    if (!initialized && cs.state?.terminated?.exitCode !== 0) {
      const waiting = cs.state?.waiting?.reason;
      if (waiting !== "PodInitializing") reasons.push(...containerReasons(cs, "Init:"));
    }
  }

  for (const cs of containerStatuses) {
    restarts += cs.restartCount ?? 0;
    if (cs.ready && cs.state?.running) readyContainers++;
    else reasons.push(...containerReasons(cs, ""));
  }

  const ready = (status.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
  if (!ready && status.phase === "Running" && reasons.length === 0) {
    // Running but not ready with no container to blame: say what the Ready condition says
    // (ContainersNotReady while a readiness probe fails, ReadinessGatesNotReady, …).
    const cond = (status.conditions ?? []).find((c) => c.type === "Ready");
    if (cond?.reason) reasons.push(cond.reason);
  }
  if (pod.metadata?.deletionTimestamp && status.phase !== "Succeeded" && status.phase !== "Failed") {
    reasons.push(status.reason === "NodeLost" ? "Unknown" : "Terminating");
  }

  return {
    name: pod.metadata?.name ?? "",
    phase: status.phase ?? "Unknown",
    readyContainers,
    totalContainers,
    restarts,
    started: toDate(status.startTime),
    reasons: [...new Set(reasons)],
    node: spec?.nodeName ?? "",
    ready,
  };
}

/** samePodInfo tells whether two summaries would look the same to a caller (used to drop no-op watch updates). */
export function samePodInfo(a: PodInfo, b: PodInfo): boolean {
  return (
    a.name === b.name &&
    a.phase === b.phase &&
    a.readyContainers === b.readyContainers &&
    a.totalContainers === b.totalContainers &&
    a.restarts === b.restarts &&
    a.started?.getTime() === b.started?.getTime() &&
    a.node === b.node &&
    a.ready === b.ready &&
    a.reasons.length === b.reasons.length &&
    a.reasons.every((r, i) => r === b.reasons[i])
  );
}

/**
 * formatAge renders the time since `since` like kubectl's AGE column (apimachinery's
 * HumanDuration): "45s", "5m30s", "3h", "2d4h", "3y".
 */
export function formatAge(since: Date, now: Date): string {
  const ms = now.getTime() - since.getTime();
  const seconds = Math.trunc(ms / 1000);
  // kubectl tolerates up to a second of clock skew as "now".
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.trunc(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.trunc(minutes / 60);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  const days = Math.trunc(hours / 24);
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${days}d` : `${days}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${days}d`;
  const years = Math.trunc(days / 365);
  if (hours < 24 * 365 * 8) {
    const d = days % 365;
    return d === 0 ? `${years}y` : `${years}y${d}d`;
  }
  return `${years}y`;
}
