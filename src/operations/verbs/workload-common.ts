import { WorkloadKind, type Workload } from "../../../gen/paas/v1/workload_pb.js";
import { create } from "@bufbuild/protobuf";
import { WorkloadSchema } from "../../../gen/paas/v1/workload_pb.js";
import { isDnsSubdomain } from "../../domain/names.ts";
import { PaasError } from "../../errors.ts";
import type { KubeClient } from "../../kube/kube-types.ts";
import { DEFAULT_LIMIT, DEFAULT_REQUEST, parseQuantity } from "../../kube/tenancy/quota.ts";
import type {
  ScalableKind,
  WorkloadClient,
  WorkloadInfo,
  WorkloadKindName,
} from "../../kube/workloads/workload-types.ts";
import type { VerbRun } from "../verb.ts";

export const WORKLOAD_SERVICE = "paas.v1.WorkloadService";

/** WorkloadVerbDeps is what the workload verbs share. */
export interface WorkloadVerbDeps {
  /** Every call as the namespace's deployer (src/kube/workloads/). */
  workloads: WorkloadClient;
  /** Managed-namespace checks and the quota. */
  kube: Pick<KubeClient, "getNamespace">;
  /** The most replicas ScaleWorkload and RebuildStatefulSetMember accept (WORKLOAD_MAX_REPLICAS). */
  maxReplicas: number;
  /** How long a wait for pods (ready, gone) and claims (gone) may take, ms. */
  waitTimeoutMs: number;
  /** Poll interval of those waits, ms. */
  pollMs?: number;
}

const RESOURCES: Record<string, ScalableKind> = { deployments: "Deployment", statefulsets: "StatefulSet" };

/**
 * scalableKindOf maps the proto kind (or, when unspecified, the REST path's resource:
 * "deployments", "statefulsets") to the API kind; INVALID_ARGUMENT for anything else.
 */
export function scalableKindOf(kind: WorkloadKind, resource = ""): ScalableKind {
  const byKind =
    kind === WorkloadKind.DEPLOYMENT ? "Deployment" : kind === WorkloadKind.STATEFULSET ? "StatefulSet" : undefined;
  const byResource = resource ? RESOURCES[resource] : undefined;
  if (resource && !byResource)
    throw new PaasError("invalid_argument", `resource must be "deployments" or "statefulsets"`);
  if (byKind && byResource && byKind !== byResource)
    throw new PaasError("invalid_argument", "kind and resource name different kinds");
  const out = byKind ?? byResource;
  if (!out) throw new PaasError("invalid_argument", "kind must be DEPLOYMENT or STATEFULSET");
  return out;
}

export function protoKind(kind: WorkloadKindName): WorkloadKind {
  return kind === "Deployment"
    ? WorkloadKind.DEPLOYMENT
    : kind === "StatefulSet"
      ? WorkloadKind.STATEFULSET
      : WorkloadKind.DAEMONSET;
}

/** checkName refuses a name that is not a DNS-1123 subdomain. */
export function checkName(name: string, field: string): void {
  if (!isDnsSubdomain(name)) throw new PaasError("invalid_argument", `${field} must be a DNS-1123 subdomain name`);
}

/** requireManaged: NOT_FOUND unless the namespace exists and is managed by this service. */
export async function requireManaged(deps: WorkloadVerbDeps, namespace: string): Promise<void> {
  await deps.kube.getNamespace(namespace);
}

export function toWorkload(w: WorkloadInfo): Workload {
  return create(WorkloadSchema, {
    kind: protoKind(w.kind),
    name: w.name,
    namespace: w.namespace,
    desiredReplicas: w.desired,
    readyReplicas: w.ready,
    updatedReplicas: w.updated,
    paused: w.paused,
    helmRelease: w.helmRelease,
  });
}

/** helmWarning is said when the workload belongs to a Helm release. */
export function helmWarning(w: WorkloadInfo): string {
  return w.helmRelease
    ? `${w.kind} ${w.name} belongs to Helm release ${w.helmRelease}: its next upgrade sets replicas back to the chart's value`
    : "";
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });

/**
 * pollUntil calls `check` until it returns a value (not undefined), at most waitTimeoutMs;
 * `check` may throw to stop (a broken precondition). DEADLINE_EXCEEDED with `what` otherwise.
 */
export async function pollUntil<T>(
  deps: WorkloadVerbDeps,
  run: Pick<VerbRun, "signal">,
  what: string,
  check: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + deps.waitTimeoutMs;
  for (;;) {
    run.signal.throwIfAborted();
    const out = await check();
    if (out !== undefined) return out;
    if (Date.now() > deadline)
      throw new PaasError("timeout", `${what}: not done after ${Math.round(deps.waitTimeoutMs / 1000)}s`);
    await sleep(deps.pollMs ?? 500, run.signal);
  }
}

/** waitReady waits until every replica of the newest spec is ready; a quota refusal of the controller is RESOURCE_EXHAUSTED. */
export async function waitReady(
  deps: WorkloadVerbDeps,
  run: Pick<VerbRun, "signal" | "progress">,
  namespace: string,
  kind: ScalableKind,
  name: string,
  replicas: number,
): Promise<WorkloadInfo> {
  return pollUntil(deps, run, `waiting for ${kind} ${name} to be ready`, async () => {
    const w = await deps.workloads.get(namespace, kind, name);
    run.progress({
      podsReady: w.ready,
      podsDesired: replicas,
      workloads: [{ kind, name, ready: w.ready, desired: replicas }],
    });
    if (w.failure.includes("exceeded quota")) throw new PaasError("resource_exhausted", w.failure);
    if (w.desired !== replicas)
      throw new PaasError(
        "failed_precondition",
        `${kind} ${name} was scaled to ${w.desired} by someone else while waiting for ${replicas} ready`,
      );
    return w.observed && w.ready === replicas && w.updated === replicas && w.current === replicas ? w : undefined;
  });
}

type Resource = "requests.cpu" | "limits.cpu" | "requests.memory" | "limits.memory";
const DEFAULTS: Record<Resource, string> = {
  "requests.cpu": DEFAULT_REQUEST.cpu,
  "limits.cpu": DEFAULT_LIMIT.cpu,
  "requests.memory": DEFAULT_REQUEST.memory,
  "limits.memory": DEFAULT_LIMIT.memory,
};

/**
 * checkQuota refuses (RESOURCE_EXHAUSTED, naming the resource) a scale-up whose new pods
 * would not fit in the namespace's ResourceQuota: the API server would refuse their pods
 * ("exceeded quota") and the workload would stay short of its replicas. A pod whose containers
 * lack a request or limit counts it once at the LimitRange default (capped at the quota, as it is).
 */
export async function checkQuota(deps: WorkloadVerbDeps, w: WorkloadInfo, replicas: number): Promise<string> {
  const extra = replicas - Math.max(w.desired, w.current);
  if (extra <= 0) return "no new pods";
  const ns = await deps.kube.getNamespace(w.namespace);
  for (const item of ns.quota) {
    const resource = item.resource as Resource | "pods";
    let perPod: number | undefined;
    if (resource === "pods") perPod = 1;
    else if (resource in DEFAULTS) {
      const declared = w.perPod[resource] ?? 0;
      const fallback = w.undeclared.includes(resource)
        ? Math.min(parseQuantity(DEFAULTS[resource]), parseQuantity(item.hard))
        : 0;
      perPod = declared + fallback;
    }
    if (perPod === undefined || perPod === 0) continue;
    const hard = parseQuantity(item.hard);
    const used = item.used ? parseQuantity(item.used) : 0;
    if (Number.isNaN(hard)) continue;
    const needed = used + extra * perPod;
    if (needed > hard + 1e-9) {
      throw new PaasError(
        "resource_exhausted",
        `exceeded quota: scaling ${w.kind} ${w.name} to ${replicas} needs ${resource}=${format(resource, needed)} ` +
          `(used ${item.used || "0"}, ${extra} more pod(s) of ${format(resource, perPod)}), limited: ${item.hard}`,
      );
    }
  }
  return `fits the quota (${extra} more pod(s))`;
}

function format(resource: string, n: number): string {
  if (resource.endsWith("memory")) return `${Math.round(n / 2 ** 20)}Mi`;
  if (resource.endsWith("cpu")) return `${Math.round(n * 1000)}m`;
  return String(n);
}
