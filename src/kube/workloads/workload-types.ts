/** WorkloadKindName is a workload's kind as the Kubernetes API names it. */
export type WorkloadKindName = "Deployment" | "StatefulSet" | "DaemonSet";
/** ScalableKind are the kinds with a scale subresource this service drives. */
export type ScalableKind = "Deployment" | "StatefulSet";

/** WorkloadInfo is one Deployment, StatefulSet or DaemonSet with its replica counts. */
export interface WorkloadInfo {
  kind: WorkloadKindName;
  name: string;
  namespace: string;
  desired: number;
  ready: number;
  updated: number;
  /** status.replicas: pods that exist (any state). */
  current: number;
  paused: boolean;
  /** meta.helm.sh/release-name, "" when none. */
  helmRelease: string;
  /** metadata.generation against status.observedGeneration: the controller has seen the newest spec. */
  observed: boolean;
  /** A controller's ReplicaFailure condition message (e.g. exceeded quota), "" when none. */
  failure: string;
  /** Per-pod resource requests and limits of the pod template (cpu in cores, memory in bytes); undefined when not declared. */
  perPod: Partial<Record<"requests.cpu" | "limits.cpu" | "requests.memory" | "limits.memory", number>>;
  /** Containers of the template missing a request or limit (the LimitRange defaults them). */
  undeclared: Array<"requests.cpu" | "limits.cpu" | "requests.memory" | "limits.memory">;
  /** StatefulSets: the volumeClaimTemplates' names. */
  claimTemplates: string[];
  /** The template's kubectl.kubernetes.io/restartedAt, "" when none. */
  restartedAt: string;
}

/** PodUse is a pod that mounts a claim. */
export interface PodUse {
  name: string;
  phase: string;
  /** Running or about to run (not Succeeded/Failed, not being deleted... still counted while Terminating). */
  active: boolean;
}

/** ClaimInfo is a PersistentVolumeClaim. */
export interface ClaimInfo {
  name: string;
  uid: string;
  phase: string;
  terminating: boolean;
  finalizers: string[];
}

/** PodBrief is a pod of a workload. */
export interface PodBrief {
  name: string;
  uid: string;
  phase: string;
  ready: boolean;
  terminating: boolean;
}

/**
 * WorkloadClient is what the workload verbs need from the Kubernetes API. Every call is made
 * as the namespace's deployer ServiceAccount (impersonation), so RBAC and admission apply as
 * they do to helm. `dryRun` sends dryRun=All.
 */
export interface WorkloadClient {
  list(namespace: string): Promise<WorkloadInfo[]>;
  /** NOT_FOUND when absent. */
  get(namespace: string, kind: WorkloadKindName, name: string): Promise<WorkloadInfo>;
  /** Reads the scale subresource: spec.replicas and its resourceVersion. */
  readScale(
    namespace: string,
    kind: ScalableKind,
    name: string,
  ): Promise<{ replicas: number; resourceVersion: string }>;
  /** Writes the scale subresource with the resourceVersion read (a concurrent change → CONFLICT). */
  writeScale(
    namespace: string,
    kind: ScalableKind,
    name: string,
    replicas: number,
    resourceVersion: string,
    dryRun: boolean,
  ): Promise<number>;
  /** Sets the pod template's kubectl.kubernetes.io/restartedAt; FAILED_PRECONDITION for a paused Deployment. */
  restart(namespace: string, kind: ScalableKind, name: string, at: string, dryRun: boolean): Promise<void>;
  getPod(namespace: string, name: string): Promise<PodBrief>;
  deletePod(namespace: string, name: string, gracePeriodSeconds: number | undefined, dryRun: boolean): Promise<void>;
  /** The claim, or undefined when it is gone. */
  getClaim(namespace: string, name: string): Promise<ClaimInfo | undefined>;
  deleteClaim(namespace: string, name: string, dryRun: boolean): Promise<void>;
  /** Pods of the namespace that mount the claim. */
  podsMounting(namespace: string, claim: string): Promise<PodUse[]>;
  /** Pods of a StatefulSet (by its selector). */
  podsOf(namespace: string, statefulset: string): Promise<PodBrief[]>;
}
