import {
  AppsV1Api,
  CoreV1Api,
  type KubeConfig,
  type V1DaemonSet,
  type V1Deployment,
  type V1PodTemplateSpec,
  type V1StatefulSet,
} from "@kubernetes/client-node";
import { PaasError } from "../../errors.ts";
import { createApi } from "../api/api-http.ts";
import { httpCodeOf, kubeError } from "../api/api-errors.ts";
import { impersonating } from "../api/impersonation.ts";
import { parseQuantity } from "../tenancy/quota.ts";
import { deployerUser } from "../tenancy/tenant-objects.ts";
import type {
  ClaimInfo,
  PodBrief,
  PodUse,
  ScalableKind,
  WorkloadClient,
  WorkloadInfo,
  WorkloadKindName,
} from "./workload-types.ts";

/** RESTARTED_AT is the template annotation `kubectl rollout restart` sets (and other tools recognize). */
export const RESTARTED_AT = "kubectl.kubernetes.io/restartedAt";
const RELEASE_NAME = "meta.helm.sh/release-name";
const RESOURCES = ["requests.cpu", "limits.cpu", "requests.memory", "limits.memory"] as const;

type AnyWorkload = V1Deployment | V1StatefulSet | V1DaemonSet;

/** templateResources sums the containers' requests and limits of a pod template. */
function templateResources(t: V1PodTemplateSpec | undefined): Pick<WorkloadInfo, "perPod" | "undeclared"> {
  const perPod: WorkloadInfo["perPod"] = {};
  const undeclared = new Set<WorkloadInfo["undeclared"][number]>();
  for (const c of t?.spec?.containers ?? []) {
    for (const key of RESOURCES) {
      const [group, res] = key.split(".") as ["requests" | "limits", "cpu" | "memory"];
      const q = c.resources?.[group]?.[res];
      if (q === undefined) {
        undeclared.add(key);
        continue;
      }
      perPod[key] = (perPod[key] ?? 0) + parseQuantity(String(q));
    }
  }
  return { perPod, undeclared: [...undeclared] };
}

function infoOf(kind: WorkloadKindName, w: AnyWorkload): WorkloadInfo {
  const meta = w.metadata ?? {};
  const template = (w.spec as { template?: V1PodTemplateSpec } | undefined)?.template;
  const generation = meta.generation ?? 0;
  const observed = (w.status?.observedGeneration ?? 0) >= generation;
  const common = {
    kind,
    name: meta.name ?? "",
    namespace: meta.namespace ?? "",
    helmRelease: meta.annotations?.[RELEASE_NAME] ?? "",
    observed,
    restartedAt: template?.metadata?.annotations?.[RESTARTED_AT] ?? "",
    claimTemplates: [] as string[],
    ...templateResources(template),
  };
  if (kind === "DaemonSet") {
    const s = (w as V1DaemonSet).status;
    return {
      ...common,
      desired: s?.desiredNumberScheduled ?? 0,
      ready: s?.numberReady ?? 0,
      updated: s?.updatedNumberScheduled ?? 0,
      current: s?.currentNumberScheduled ?? 0,
      paused: false,
      failure: "",
    };
  }
  const d = w as V1Deployment | V1StatefulSet;
  const conditions = (d.status?.conditions ?? []) as Array<{ type?: string; status?: string; message?: string }>;
  const failed = conditions.find((c) => c.type === "ReplicaFailure" && c.status === "True");
  return {
    ...common,
    desired: d.spec?.replicas ?? 1,
    ready: d.status?.readyReplicas ?? 0,
    updated: d.status?.updatedReplicas ?? 0,
    current: d.status?.replicas ?? 0,
    paused: kind === "Deployment" ? ((d as V1Deployment).spec?.paused ?? false) : false,
    failure: failed?.message ?? "",
    claimTemplates:
      kind === "StatefulSet"
        ? ((d as V1StatefulSet).spec?.volumeClaimTemplates ?? []).map((t) => t.metadata?.name ?? "")
        : [],
  };
}

const dry = (dryRun: boolean) => (dryRun ? { dryRun: "All" } : {});

/** createWorkloadClient builds the WorkloadClient on `kc`, impersonating each namespace's deployer. */
export function createWorkloadClient(kc: KubeConfig, requestTimeoutMs = 30_000): WorkloadClient {
  const apis = new Map<string, { apps: AppsV1Api; core: CoreV1Api }>();
  const as = (namespace: string) => {
    let found = apis.get(namespace);
    if (!found) {
      const user = impersonating(kc, deployerUser(namespace));
      found = {
        apps: createApi(user, requestTimeoutMs, AppsV1Api),
        core: createApi(user, requestTimeoutMs, CoreV1Api),
      };
      apis.set(namespace, found);
    }
    return found;
  };
  const guard = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      throw kubeError(err, what);
    }
  };

  async function readWorkload(namespace: string, kind: WorkloadKindName, name: string): Promise<AnyWorkload> {
    const { apps } = as(namespace);
    const what = `read ${kind} ${namespace}/${name}`;
    return guard(what, () =>
      kind === "Deployment"
        ? apps.readNamespacedDeployment({ name, namespace })
        : kind === "StatefulSet"
          ? apps.readNamespacedStatefulSet({ name, namespace })
          : apps.readNamespacedDaemonSet({ name, namespace }),
    );
  }

  return {
    async list(namespace) {
      const { apps } = as(namespace);
      const [d, s, ds] = await Promise.all([
        guard(`list Deployments in ${namespace}`, () => apps.listNamespacedDeployment({ namespace })),
        guard(`list StatefulSets in ${namespace}`, () => apps.listNamespacedStatefulSet({ namespace })),
        guard(`list DaemonSets in ${namespace}`, () => apps.listNamespacedDaemonSet({ namespace })),
      ]);
      return [
        ...d.items.map((w) => infoOf("Deployment", w)),
        ...s.items.map((w) => infoOf("StatefulSet", w)),
        ...ds.items.map((w) => infoOf("DaemonSet", w)),
      ].sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name));
    },

    async get(namespace, kind, name) {
      return infoOf(kind, await readWorkload(namespace, kind, name));
    },

    async readScale(namespace, kind, name) {
      const { apps } = as(namespace);
      const scale = await guard(`read the scale of ${kind} ${namespace}/${name}`, () =>
        kind === "Deployment"
          ? apps.readNamespacedDeploymentScale({ name, namespace })
          : apps.readNamespacedStatefulSetScale({ name, namespace }),
      );
      return { replicas: scale.spec?.replicas ?? 0, resourceVersion: scale.metadata?.resourceVersion ?? "" };
    },

    async writeScale(namespace, kind, name, replicas, resourceVersion, dryRun) {
      const { apps } = as(namespace);
      const body = {
        apiVersion: "autoscaling/v1",
        kind: "Scale",
        metadata: { name, namespace, resourceVersion },
        spec: { replicas },
      };
      const out = await guard(`scale ${kind} ${namespace}/${name}`, () =>
        kind === "Deployment"
          ? apps.replaceNamespacedDeploymentScale({ name, namespace, body, ...dry(dryRun) })
          : apps.replaceNamespacedStatefulSetScale({ name, namespace, body, ...dry(dryRun) }),
      );
      return out.spec?.replicas ?? replicas;
    },

    async restart(namespace, kind, name, at, dryRun) {
      const { apps } = as(namespace);
      const what = `restart ${kind} ${namespace}/${name}`;
      // Read, set the annotation, replace with the resourceVersion read: a concurrent
      // change is a CONFLICT, never lost.
      const w = (await readWorkload(namespace, kind, name)) as V1Deployment | V1StatefulSet;
      if (kind === "Deployment" && (w as V1Deployment).spec?.paused) {
        throw new PaasError(
          "failed_precondition",
          `Deployment ${namespace}/${name} is paused: a restart would not roll out; resume it first`,
        );
      }
      const template = w.spec!.template;
      template.metadata = {
        ...template.metadata,
        annotations: { ...template.metadata?.annotations, [RESTARTED_AT]: at },
      };
      await guard(what, () =>
        kind === "Deployment"
          ? apps.replaceNamespacedDeployment({ name, namespace, body: w as V1Deployment, ...dry(dryRun) })
          : apps.replaceNamespacedStatefulSet({ name, namespace, body: w as V1StatefulSet, ...dry(dryRun) }),
      );
    },

    async getPod(namespace, name) {
      const { core } = as(namespace);
      const p = await guard(`read pod ${namespace}/${name}`, () => core.readNamespacedPod({ name, namespace }));
      return briefOf(p);
    },

    async deletePod(namespace, name, gracePeriodSeconds, dryRun) {
      const { core } = as(namespace);
      await guard(`delete pod ${namespace}/${name}`, () =>
        core.deleteNamespacedPod({
          name,
          namespace,
          ...(gracePeriodSeconds !== undefined ? { gracePeriodSeconds } : {}),
          ...dry(dryRun),
        }),
      );
    },

    async getClaim(namespace, name) {
      const { core } = as(namespace);
      try {
        const c = await core.readNamespacedPersistentVolumeClaim({ name, namespace });
        return {
          name,
          uid: c.metadata?.uid ?? "",
          phase: c.status?.phase ?? "",
          terminating: c.metadata?.deletionTimestamp !== undefined,
          finalizers: c.metadata?.finalizers ?? [],
        } satisfies ClaimInfo;
      } catch (err) {
        if (httpCodeOf(err) === 404) return undefined;
        throw kubeError(err, `read PersistentVolumeClaim ${namespace}/${name}`);
      }
    },

    async deleteClaim(namespace, name, dryRun) {
      const { core } = as(namespace);
      await guard(`delete PersistentVolumeClaim ${namespace}/${name}`, () =>
        core.deleteNamespacedPersistentVolumeClaim({ name, namespace, ...dry(dryRun) }),
      );
    },

    async podsMounting(namespace, claim) {
      const { core } = as(namespace);
      const pods = await guard(`list pods in ${namespace}`, () => core.listNamespacedPod({ namespace }));
      const out: PodUse[] = [];
      for (const p of pods.items) {
        if (!(p.spec?.volumes ?? []).some((v) => v.persistentVolumeClaim?.claimName === claim)) continue;
        const phase = p.status?.phase ?? "";
        out.push({ name: p.metadata?.name ?? "", phase, active: phase !== "Succeeded" && phase !== "Failed" });
      }
      return out;
    },

    async podsOf(namespace, statefulset) {
      const { core } = as(namespace);
      const s = (await readWorkload(namespace, "StatefulSet", statefulset)) as V1StatefulSet;
      const labels = s.spec?.selector?.matchLabels ?? {};
      const labelSelector = Object.entries(labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(",");
      const pods = await guard(`list pods in ${namespace}`, () => core.listNamespacedPod({ namespace, labelSelector }));
      return pods.items
        .filter((p) =>
          (p.metadata?.ownerReferences ?? []).some((o) => o.kind === "StatefulSet" && o.name === statefulset),
        )
        .map(briefOf);
    },
  };
}

function briefOf(p: import("@kubernetes/client-node").V1Pod): PodBrief {
  return {
    name: p.metadata?.name ?? "",
    uid: p.metadata?.uid ?? "",
    phase: p.status?.phase ?? "",
    ready: (p.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True"),
    terminating: p.metadata?.deletionTimestamp !== undefined,
  };
}

/** scalableKind narrows a kind to the ones with a scale subresource. */
export function isScalable(kind: WorkloadKindName): kind is ScalableKind {
  return kind === "Deployment" || kind === "StatefulSet";
}
