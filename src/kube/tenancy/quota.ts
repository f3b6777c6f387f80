import type { V1ResourceQuota } from "@kubernetes/client-node";
import { PaasError } from "../../errors.ts";
import type { QuotaItem, QuotaSpec } from "../kube-types.ts";

/** QUOTA_NAME is the ResourceQuota this service owns in each tenant namespace. */
export const QUOTA_NAME = "paas-quota";
/** LIMIT_RANGE_NAME is the LimitRange that gives containers default requests and limits. */
export const LIMIT_RANGE_NAME = "paas-limits";
/**
 * MAX_PVCS caps PersistentVolumeClaims per namespace. requests.storage already bounds
 * the bytes; the count keeps a tenant from exhausting the storage backend's volume
 * slots with many tiny claims. Ten is enough for a handful of stateful releases.
 */
export const MAX_PVCS = "10";
/**
 * OBJECT_COUNTS cap what costs the cluster something beyond CPU and memory:
 *  - NodePort and LoadBalancer Services open ports on every node or buy a cloud load
 *    balancer; tenants reach the outside through Ingresses, so both are 0;
 *  - Secrets and ConfigMaps live in etcd (up to 1 MiB each). Helm keeps one Secret per
 *    revision (at most 10 per release with the default --history-max) and charts add a few
 *    of their own: 100 fits about six releases with full histories, ConfigMaps likewise
 *    (kube-root-ca.crt, which Kubernetes puts in every namespace, counts too).
 */
export const OBJECT_COUNTS: Readonly<Record<string, string>> = {
  "services.nodeports": "0",
  "services.loadbalancers": "0",
  "count/secrets": "100",
  "count/configmaps": "100",
};

// Quantity grammar (apimachinery resource.Quantity), without the sign: a tenant quota is never negative.
const QUANTITY = /^(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;
const MULTIPLIER: Record<string, number> = {
  "": 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** parseQuantity returns a Kubernetes quantity's value in base units (cores, bytes), or NaN when it is not one. */
export function parseQuantity(q: string): number {
  const m = QUANTITY.exec(q.trim());
  if (!m) return NaN;
  const suffix = m[3] ?? "";
  const mult = /^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : MULTIPLIER[suffix]!;
  return Number(m[1]) * mult;
}

/** validateQuota rejects limits the API server would refuse, before anything is created. */
export function validateQuota(spec: QuotaSpec): void {
  for (const [field, value] of Object.entries(spec) as [keyof QuotaSpec, string][]) {
    if (!Number.isFinite(parseQuantity(value))) {
      throw new PaasError(
        "invalid_argument",
        `quota ${field} "${value}" is not a Kubernetes quantity (e.g. 500m, 2, 4Gi)`,
      );
    }
  }
}

/** quotaManifest is the ResourceQuota applied to a tenant namespace: requests and limits both capped at the tenant's share. */
export function quotaManifest(namespace: string, spec: QuotaSpec, labels: Record<string, string>): V1ResourceQuota {
  return {
    apiVersion: "v1",
    kind: "ResourceQuota",
    metadata: { name: QUOTA_NAME, namespace, labels },
    spec: {
      hard: {
        "requests.cpu": spec.cpu,
        "limits.cpu": spec.cpu,
        "requests.memory": spec.memory,
        "limits.memory": spec.memory,
        "requests.storage": spec.storage,
        persistentvolumeclaims: MAX_PVCS,
        ...OBJECT_COUNTS,
      },
    },
  };
}

// A quota on limits.cpu/limits.memory makes the API server refuse every pod that does not
// declare them, and many charts (podinfo among them) set requests only. Defaults fill the
// gap; each is capped at the quota so that one defaulted pod always fits.
export const DEFAULT_REQUEST = { cpu: "100m", memory: "128Mi" };
export const DEFAULT_LIMIT = { cpu: "500m", memory: "512Mi" };

function capped(value: string, cap: string): string {
  return parseQuantity(value) <= parseQuantity(cap) ? value : cap;
}

/**
 * limitRangeManifest gives containers without requests/limits defaults that fit in the
 * quota. It is wire JSON, not a V1LimitRange: client-node calls the field `_default` and
 * only renames it when it serializes a typed body, which an apply patch is not.
 */
export function limitRangeManifest(
  namespace: string,
  spec: QuotaSpec,
  labels: Record<string, string>,
): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "LimitRange",
    metadata: { name: LIMIT_RANGE_NAME, namespace, labels },
    spec: {
      limits: [
        {
          type: "Container",
          defaultRequest: {
            cpu: capped(DEFAULT_REQUEST.cpu, spec.cpu),
            memory: capped(DEFAULT_REQUEST.memory, spec.memory),
          },
          default: { cpu: capped(DEFAULT_LIMIT.cpu, spec.cpu), memory: capped(DEFAULT_LIMIT.memory, spec.memory) },
        },
      ],
    },
  };
}

/** quotaItems lists a ResourceQuota's resources, hard against used, sorted by resource ("" used = not yet computed). */
export function quotaItems(rq: V1ResourceQuota | undefined): QuotaItem[] {
  // spec.hard is what we asked for; status.hard only catches up once the quota controller has run.
  const hard = rq?.spec?.hard ?? rq?.status?.hard ?? {};
  const used = rq?.status?.used ?? {};
  return Object.keys(hard)
    .sort()
    .map((resource) => ({ resource, hard: hard[resource]!, used: used[resource] ?? "" }));
}
