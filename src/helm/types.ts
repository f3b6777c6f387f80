/** JsonObject is a values tree as it arrives from a google.protobuf.Struct. */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export type JsonObject = { [key: string]: JsonValue };

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

/** CommonOptions apply to every helm run. */
export interface CommonOptions {
  namespace: string;
  name: string;
  /** Helm --timeout in seconds. */
  timeoutSeconds: number;
  /** Aborts the run: helm gets SIGTERM (never SIGKILL) so that it can record its outcome. */
  signal?: AbortSignal;
}

export interface InstallOptions extends CommonOptions {
  chart: ChartSource;
  values: JsonObject;
  createNamespace: boolean;
  wait: boolean;
  /** Release labels stored by Helm (--labels). */
  labels: Record<string, string>;
}

export interface UpgradeOptions extends CommonOptions {
  chart: ChartSource;
  values: JsonObject;
  resetValues: boolean;
  reuseValues: boolean;
  wait: boolean;
  labels: Record<string, string>;
}

export interface RollbackOptions extends CommonOptions {
  /** 0 = the previous revision. */
  revision: number;
  wait: boolean;
}

/** HelmClient is what the service needs from Helm; one method per verb. */
export interface HelmClient {
  /** Helm's version, e.g. "v4.3.1". */
  version(): Promise<string>;
  install(opts: InstallOptions): Promise<ReleaseInfo>;
  upgrade(opts: UpgradeOptions): Promise<ReleaseInfo>;
  rollback(opts: RollbackOptions): Promise<void>;
  uninstall(opts: CommonOptions): Promise<void>;
  /** The current revision with its user-supplied values and notes. */
  get(namespace: string, name: string): Promise<ReleaseInfo>;
  history(namespace: string, name: string): Promise<RevisionInfo[]>;
  list(namespace: string): Promise<ReleaseInfo[]>;
}
