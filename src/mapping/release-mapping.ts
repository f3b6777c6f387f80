import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  PodStatusSchema,
  ReleaseSchema,
  ReleaseStatus,
  RevisionSchema,
  type PodStatus,
  type Release,
  type Revision,
} from "../../gen/paas/v1/release_pb.js";
import { NamespaceSchema, type Namespace } from "../../gen/paas/v1/namespace_pb.js";
import { digestFromLabels } from "../helm/chart-labels.ts";
import type { ChartSource, HelmStatus, ReleaseInfo, RevisionInfo } from "../domain/release.ts";
import { formatAge } from "../kube/watch/pod-status.ts";
import { CALLER_LABEL, OPERATION_LABEL } from "../helm/release-labels.ts";
import type { NamespaceInfo, PodInfo } from "../kube/kube-types.ts";

const statusByHelm: Record<HelmStatus, ReleaseStatus> = {
  unknown: ReleaseStatus.UNKNOWN,
  deployed: ReleaseStatus.DEPLOYED,
  uninstalled: ReleaseStatus.UNINSTALLED,
  superseded: ReleaseStatus.SUPERSEDED,
  failed: ReleaseStatus.FAILED,
  uninstalling: ReleaseStatus.UNINSTALLING,
  "pending-install": ReleaseStatus.PENDING_INSTALL,
  "pending-upgrade": ReleaseStatus.PENDING_UPGRADE,
  "pending-rollback": ReleaseStatus.PENDING_ROLLBACK,
};

/** releaseStatus maps Helm's status string to the API enum. */
export function releaseStatus(status: HelmStatus): ReleaseStatus {
  return statusByHelm[status] ?? ReleaseStatus.UNKNOWN;
}

/** helmStatus maps the API enum back to Helm's lowercase string ("deployed", "pending-upgrade", …). */
export function helmStatus(status: ReleaseStatus): HelmStatus {
  for (const [helm, value] of Object.entries(statusByHelm)) if (value === status) return helm as HelmStatus;
  return "unknown";
}

/** ReleaseExtras are what the API Release carries beyond Helm's view of the revision. */
export interface ReleaseExtras {
  /** Labels of the revision's storage Secret (or those the operation passed to helm). */
  labels?: Record<string, string>;
  /** Holder of the release's live Lease. */
  lockedBy?: string;
}

/** toRelease builds the API Release from Helm's view and the recorded chart source. */
export function toRelease(info: ReleaseInfo, source?: ChartSource, extras: ReleaseExtras = {}): Release {
  return create(ReleaseSchema, {
    pendingSince: info.pendingSince ? timestampFromDate(info.pendingSince) : undefined,
    lockedBy: extras.lockedBy ?? "",
    changedBy: extras.labels?.[CALLER_LABEL] ?? "",
    operationId: extras.labels?.[OPERATION_LABEL] ?? "",
    name: info.name,
    namespace: info.namespace,
    revision: info.revision,
    status: releaseStatus(info.status),
    chart: info.chart,
    chartVersion: info.chartVersion,
    appVersion: info.appVersion,
    updated: info.updated ? timestampFromDate(info.updated) : undefined,
    description: info.description,
    values: info.values,
    notes: info.notes,
    chartReference: source?.ref ?? "",
    repoUrl: source?.repoUrl ?? "",
    // Install and upgrade know the digest they pulled; reads find it in the release labels.
    chartDigest: info.chartDigest ?? digestFromLabels(extras.labels ?? {}) ?? "",
  });
}

/** toRevision builds one history entry. */
export function toRevision(info: RevisionInfo): Revision {
  return create(RevisionSchema, {
    revision: info.revision,
    updated: info.updated ? timestampFromDate(info.updated) : undefined,
    status: releaseStatus(info.status),
    chart: info.chart,
    appVersion: info.appVersion,
    description: info.description,
  });
}

/** toPodStatus builds the API pod summary; age is computed against `now`. */
export function toPodStatus(pod: PodInfo, now = new Date()): PodStatus {
  return create(PodStatusSchema, {
    name: pod.name,
    phase: pod.phase,
    ready: `${pod.readyContainers}/${pod.totalContainers}`,
    readyContainers: pod.readyContainers,
    totalContainers: pod.totalContainers,
    restarts: pod.restarts,
    started: pod.started ? timestampFromDate(pod.started) : undefined,
    age: pod.started ? formatAge(pod.started, now) : "",
    reasons: pod.reasons,
    node: pod.node,
    podReady: pod.ready,
  });
}

/** toNamespace builds the API namespace with its quota. */
export function toNamespace(ns: NamespaceInfo): Namespace {
  return create(NamespaceSchema, {
    name: ns.name,
    phase: ns.phase,
    created: ns.created ? timestampFromDate(ns.created) : undefined,
    quota: ns.quota,
    ready: ns.ready ?? false,
    podSecurity: ns.podSecurity ?? "",
  });
}
