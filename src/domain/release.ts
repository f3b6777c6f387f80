// The types every layer shares: a values tree, a chart's source, and a release as Helm
// reports it. Adapters (helm/, kube/) produce them, services map them to protos.

/**
 * JsonValue and JsonObject are protobuf-es's own JSON types (what toJson gives and
 * google.protobuf.Struct holds): a values tree, a REST body. Imported from here, not redefined.
 */
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";

export type { JsonObject, JsonValue };

/** HelmStatus is Helm's own lowercase release status string. */
export type HelmStatus =
  | "unknown"
  | "deployed"
  | "uninstalled"
  | "superseded"
  | "failed"
  | "uninstalling"
  | "pending-install"
  | "pending-upgrade"
  | "pending-rollback";

/** ReleaseInfo is one revision of a release as Helm reports it. */
export interface ReleaseInfo {
  name: string;
  namespace: string;
  revision: number;
  status: HelmStatus;
  /** Chart name, e.g. "podinfo". */
  chart: string;
  chartVersion: string;
  appVersion: string;
  updated?: Date;
  /**
   * Only for a pending-* status read from Helm's storage: when the operation started
   * (info.last_deployed, else info.first_deployed). A pending revision whose operation is
   * long gone is a stuck release (see src/kube/recovery.ts).
   */
  pendingSince?: Date;
  description: string;
  /** User-supplied values of this revision (`helm get values`). */
  values: JsonObject;
  notes: string;
  /**
   * OCI manifest digest ("sha256:…") of the chart this revision was installed from: set by
   * install and upgrade, which resolve the chart themselves; reads get it from the labels.
   */
  chartDigest?: string;
}

/** RevisionInfo is one entry of `helm history`. */
export interface RevisionInfo {
  revision: number;
  updated?: Date;
  status: HelmStatus;
  /** Chart name and version, e.g. "podinfo-6.13.0". */
  chart: string;
  appVersion: string;
  description: string;
}

/** ChartSource says where a chart comes from. */
export interface ChartSource {
  /** oci://host/path/chart, repo/chart (a repository configured on the server), or a name with repoUrl. */
  ref: string;
  version?: string;
  repoUrl?: string;
}
