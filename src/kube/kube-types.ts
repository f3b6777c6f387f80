import type { PodSecurityLevel } from "../domain/pod-security-levels.ts";
import type { ReleaseInfo } from "../domain/release.ts";
import type { StepSink } from "../domain/steps.ts";
import type { WorkloadReplicas } from "./watch/workload-replicas.ts";

/** PodInfo summarises one pod of a release. */
export interface PodInfo {
  name: string;
  /** Phase as Kubernetes writes it: Pending, Running, Succeeded, Failed, Unknown. */
  phase: string;
  readyContainers: number;
  totalContainers: number;
  restarts: number;
  /** status.startTime. */
  started?: Date;
  /** Why the pod is not running or not ready: CrashLoopBackOff, ImagePullBackOff, Unschedulable, … */
  reasons: string[];
  node: string;
  /** The pod's Ready condition. */
  ready: boolean;
}

/** QuotaSpec holds the limits a tenant namespace gets, as Kubernetes quantities. */
export interface QuotaSpec {
  cpu: string;
  memory: string;
  storage: string;
}

/** QuotaItem is one resource of a ResourceQuota, hard against used. */
export interface QuotaItem {
  resource: string;
  hard: string;
  used: string;
}

/** NamespaceInfo is a namespace managed by this service with its quota. */
export interface NamespaceInfo {
  name: string;
  phase: string;
  created?: Date;
  quota: QuotaItem[];
  /**
   * Every provisioning step succeeded (label paas.io/ready=true): helm may write into it.
   * Optional for fakes; the real client always sets it.
   */
  ready?: boolean;
  /** Enforced Pod Security level (pod-security.kubernetes.io/enforce), "" when none. */
  podSecurity?: string;
}

/** NamespaceOptions are per-namespace choices of ensureNamespace. */
export interface NamespaceOptions {
  /** Pod Security level to enforce; default: the client's (POD_SECURITY_LEVEL). */
  podSecurity?: PodSecurityLevel;
  /** Told of each provisioning step: namespace, limit-range, quota, network-policy, deployer-identity, ready. */
  steps?: StepSink;
}

/** StoredRelease is a release revision read from Helm's storage Secret, with its labels. */
export interface StoredRelease {
  release: ReleaseInfo;
  /** Labels of the storage Secret: Helm's own (name, owner, status, version) and --labels. */
  labels: Record<string, string>;
}

/** ReleaseWatchEvent is one message of a release status watch. */
export type ReleaseWatchEvent =
  | { kind: "snapshot"; release?: ReleaseInfo; pods: PodInfo[] }
  | { kind: "pod_added" | "pod_modified" | "pod_deleted"; pod: PodInfo }
  | { kind: "release_changed"; release: ReleaseInfo }
  | { kind: "release_uninstalled" };

/** KubeClient is what the service needs from the Kubernetes API. */
export interface KubeClient {
  /** Resolves when the API server answers; rejects with an "unavailable" PaasError otherwise. */
  ping(signal?: AbortSignal): Promise<void>;
  /**
   * Creates the namespace (labelled as managed) with its quota, LimitRange, Pod Security
   * labels, default-deny NetworkPolicy, the deployer ServiceAccount helm impersonates and
   * the RoleBindings, then labels it ready; on an existing managed namespace it re-applies
   * all of it (updates the quota, repairs a half-provisioned namespace).
   */
  ensureNamespace(
    name: string,
    quota: QuotaSpec,
    options?: NamespaceOptions,
  ): Promise<{ created: boolean; namespace: NamespaceInfo }>;
  /** A managed namespace; "not_found" when it is absent or not managed by this service. */
  getNamespace(name: string): Promise<NamespaceInfo>;
  /** Managed namespaces whose name starts with the prefix. */
  listNamespaces(prefix: string): Promise<NamespaceInfo[]>;
  /** Deletes a managed namespace; "not_found" when it is absent or not managed. */
  deleteNamespace(name: string): Promise<void>;
  /** Pods labelled app.kubernetes.io/instance=<release> (or release=<release> for older charts). */
  listReleasePods(namespace: string, release: string): Promise<PodInfo[]>;
  /** The workloads of the newest revision's manifest and the pods each wants; [] when there is no release. */
  releaseWorkloads(namespace: string, release: string): Promise<WorkloadReplicas[]>;
  /** The newest revision in Helm's storage, or undefined when the release does not exist. */
  getStoredRelease(namespace: string, release: string): Promise<StoredRelease | undefined>;
  /**
   * Streams a snapshot of the release and its pods, then one event per change, until
   * the signal aborts or the release is uninstalled (then "release_uninstalled" is the last event).
   */
  watchRelease(namespace: string, release: string, signal: AbortSignal): AsyncIterable<ReleaseWatchEvent>;
}
