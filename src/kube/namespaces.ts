import { type CoreV1Api, PatchStrategy, setHeaderOptions, type V1Namespace, type V1ResourceQuota } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { PaasError } from "../errors.ts";
import { httpCodeOf, kubeError } from "./classify.ts";
import { LIMIT_RANGE_NAME, limitRangeManifest, QUOTA_NAME, quotaItems, quotaManifest, validateQuota } from "./quota.ts";
import type { NamespaceInfo, QuotaSpec } from "./types.ts";

/** FIELD_MANAGER names this service in server-side apply's managedFields. */
export const FIELD_MANAGER = "paas-operator";

/** ManagedLabel marks the namespaces this service created, e.g. app.kubernetes.io/managed-by=paas-operator. */
export interface ManagedLabel {
  key: string;
  value: string;
}

// Server-side apply: the API server merges our fields and owns the create-or-update race.
// client-node picks application/json-patch+json for every patch; the per-call header
// middleware overrides it (a JSON body is valid YAML, so the apply body needs no conversion).
const APPLY = setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply);

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** assertDnsLabel rejects names Kubernetes would refuse (namespaces and release names are RFC 1123 labels). */
export function assertDnsLabel(name: string, what: string): void {
  if (name.length > 63 || !DNS_LABEL.test(name)) {
    throw new PaasError("invalid_argument", `${what} "${name}" must be a lowercase RFC 1123 label (a-z, 0-9, '-', at most 63 characters)`);
  }
}

/** namespaceInfo builds the NamespaceInfo of a namespace and its quota. */
export function namespaceInfo(ns: V1Namespace, rq: V1ResourceQuota | undefined): NamespaceInfo {
  return {
    name: ns.metadata?.name ?? "",
    phase: ns.status?.phase ?? "",
    created: ns.metadata?.creationTimestamp,
    quota: quotaItems(rq),
  };
}

/** NamespaceOps are the namespace half of KubeClient. */
export interface NamespaceOps {
  ensureNamespace(name: string, quota: QuotaSpec): Promise<{ created: boolean; namespace: NamespaceInfo }>;
  getNamespace(name: string): Promise<NamespaceInfo>;
  listNamespaces(prefix: string): Promise<NamespaceInfo[]>;
  deleteNamespace(name: string): Promise<void>;
}

/** createNamespaceOps implements the namespace half of KubeClient over a CoreV1Api. */
export function createNamespaceOps(api: CoreV1Api, managed: ManagedLabel, logger: Pick<Logger, "info" | "warn">): NamespaceOps {
  const labels = { [managed.key]: managed.value };
  const isManaged = (ns: V1Namespace) => ns.metadata?.labels?.[managed.key] === managed.value;
  // Absent and unmanaged look the same from outside: we never reveal other namespaces.
  const notFound = (name: string) => new PaasError("not_found", `namespace "${name}" not found`);

  async function readManaged(name: string): Promise<V1Namespace> {
    assertDnsLabel(name, "namespace");
    let ns: V1Namespace;
    try {
      ns = await api.readNamespace({ name });
    } catch (err) {
      if (httpCodeOf(err) === 404) throw notFound(name);
      throw kubeError(err, `read namespace "${name}"`);
    }
    if (!isManaged(ns)) throw notFound(name);
    return ns;
  }

  async function readQuota(name: string): Promise<V1ResourceQuota | undefined> {
    try {
      return await api.readNamespacedResourceQuota({ name: QUOTA_NAME, namespace: name });
    } catch (err) {
      if (httpCodeOf(err) === 404) return undefined;
      throw kubeError(err, `read quota of namespace "${name}"`);
    }
  }

  async function applyQuota(name: string, quota: QuotaSpec): Promise<V1ResourceQuota> {
    // force: we are the only writer meant to own these objects; take fields back from any other manager.
    const common = { namespace: name, fieldManager: FIELD_MANAGER, force: true };
    await api.patchNamespacedLimitRange(
      { ...common, name: LIMIT_RANGE_NAME, body: limitRangeManifest(name, quota, labels) },
      APPLY,
    );
    return api.patchNamespacedResourceQuota({ ...common, name: QUOTA_NAME, body: quotaManifest(name, quota, labels) }, APPLY);
  }

  return {
    async ensureNamespace(name, quota) {
      assertDnsLabel(name, "namespace");
      validateQuota(quota);
      let ns: V1Namespace;
      let created = false;
      try {
        ns = await api.createNamespace({ body: { metadata: { name, labels } }, fieldManager: FIELD_MANAGER });
        created = true;
      } catch (err) {
        if (httpCodeOf(err) !== 409) throw kubeError(err, `create namespace "${name}"`);
        try {
          ns = await api.readNamespace({ name });
        } catch (readErr) {
          // Deleted between our create and read: let the caller retry.
          throw kubeError(readErr, `read namespace "${name}"`);
        }
        // Decision: a namespace we did not create is never adopted. It may belong to
        // someone else, and labelling it would hand it to a tenant.
        if (!isManaged(ns)) {
          throw new PaasError("permission_denied", `namespace "${name}" exists and is not managed by this service`);
        }
        if (ns.metadata?.deletionTimestamp || ns.status?.phase === "Terminating") {
          throw new PaasError("failed_precondition", `namespace "${name}" is being deleted; retry when it is gone`);
        }
      }
      let rq: V1ResourceQuota;
      try {
        rq = await applyQuota(name, quota);
      } catch (err) {
        if (created) {
          // Never leave a fresh namespace without its quota: a retry creates both again.
          await api.deleteNamespace({ name }).catch((delErr: unknown) =>
            logger.warn({ err: delErr, namespace: name }, "could not remove namespace after its quota failed"),
          );
        }
        throw kubeError(err, `apply quota to namespace "${name}"`);
      }
      if (created) logger.info({ namespace: name, quota }, "namespace created");
      return { created, namespace: namespaceInfo(ns, rq) };
    },

    async getNamespace(name) {
      const ns = await readManaged(name);
      return namespaceInfo(ns, await readQuota(name));
    },

    async listNamespaces(prefix) {
      const selector = `${managed.key}=${managed.value}`;
      try {
        const [nsList, rqList] = await Promise.all([
          api.listNamespace({ labelSelector: selector }),
          // One call for every quota instead of one per namespace.
          api.listResourceQuotaForAllNamespaces({ fieldSelector: `metadata.name=${QUOTA_NAME}` }),
        ]);
        const quotas = new Map(rqList.items.map((rq) => [rq.metadata?.namespace ?? "", rq]));
        return nsList.items
          .filter((ns) => (ns.metadata?.name ?? "").startsWith(prefix) && isManaged(ns))
          .map((ns) => namespaceInfo(ns, quotas.get(ns.metadata?.name ?? "")))
          .sort((a, b) => a.name.localeCompare(b.name));
      } catch (err) {
        throw kubeError(err, "list namespaces");
      }
    },

    async deleteNamespace(name) {
      const ns = await readManaged(name);
      try {
        // The uid precondition makes sure we delete the namespace we checked, not one
        // recreated (perhaps unmanaged) in between.
        await api.deleteNamespace({ name, body: { preconditions: { uid: ns.metadata?.uid } } });
      } catch (err) {
        if (httpCodeOf(err) === 404 || httpCodeOf(err) === 409) throw notFound(name);
        throw kubeError(err, `delete namespace "${name}"`);
      }
      logger.info({ namespace: name }, "namespace deletion requested");
    },
  };
}
