import type { PendingRevision, ReleaseRecovery } from "../../domain/ports.ts";
import { CoreV1Api, type KubeConfig, type V1Secret } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { PaasError } from "../../errors.ts";
import { date as helmDate } from "../../helm/parse-json.ts";
import { httpCodeOf, kubeError } from "../api/api-errors.ts";
import { DEFAULT_MANAGED_LABEL } from "../kube-client.ts";
import {
  decodeReleaseText,
  encodeReleaseData,
  HELM_SECRET_TYPE,
  isPendingStatus,
  parseReleaseJsonExact,
  type PendingStatus,
  secretRevision,
} from "./helm-storage.ts";
import { createApi, getJson } from "../api/api-http.ts";
import { impersonating } from "../api/impersonation.ts";
import { assertNamespaceName, assertReleaseName } from "../../domain/names.ts";
import type { ManagedLabel } from "../tenancy/namespaces.ts";
import { helmStorageSelector } from "../watch/release-pods.ts";
import { deployerUser } from "../tenancy/tenant-objects.ts";

// Stuck releases: a helm process that dies mid-operation (operator crash, SIGKILL, node
// loss) leaves its release's newest revision pending-install/-upgrade/-rollback, and every
// later helm run on it fails with "another operation (install/upgrade/rollback) is in
// progress". Once the release's Lease (leases.ts) shows that no live operation owns it,
// the operator repairs it the way Helm records a failed operation itself (action.Upgrade's
// failRelease and friends): info.status = "failed", info.description = why, storage label
// status=failed (and modifiedAt, as Helm's Secret driver Update sets it). Everything else in
// the record stays byte-for-byte the same JSON values. Helm then upgrades from the last
// deployed revision (or, after a failed first install, from the failed one) and rolls back
// as after any failure.
//
// The Secret is written as the namespace's deployer (the identity every helm run
// impersonates), so the operator needs no write right on Secrets anywhere; reads use the
// operator's own per-namespace binding (paas-operator-tenant).

export type { PendingRevision, ReleaseRecovery };

/** ReleaseRecoveryOptions configure createReleaseRecovery. */
export interface ReleaseRecoveryOptions {
  /** The operator's own identity. */
  kubeConfig: KubeConfig;
  logger: Logger;
  /** The label that marks namespaces as ours. Default DEFAULT_MANAGED_LABEL. */
  managedLabel?: ManagedLabel;
  /** Deadline of one API request. Default 30 s. */
  requestTimeoutMs?: number;
  /** Who writes a namespace's storage Secrets. Default deployerUser (system:serviceaccount:<ns>:paas-deployer). */
  writerFor?: (namespace: string) => string;
  /** How many namespaces listPending reads at once. Default 8. */
  concurrency?: number;
}

/** MetaItem is one item of a metadata-only list (PartialObjectMetadataList). */
interface MetaItem {
  metadata?: { name?: string; labels?: Record<string, string> };
}

const PARTIAL_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";

/** newestByRelease picks, per release name (label "name"), the storage record with the highest revision. */
export function newestByRelease(items: readonly MetaItem[]): Map<string, MetaItem> {
  const newest = new Map<string, MetaItem>();
  for (const item of items) {
    const name = item.metadata?.labels?.["name"];
    if (!name || item.metadata?.labels?.["owner"] !== "helm") continue;
    const best = newest.get(name);
    if (!best || secretRevision(item) > secretRevision(best)) newest.set(name, item);
  }
  return newest;
}

/**
 * markedFailed returns the Secret with its release marked failed (JSON info.status and
 * description; labels status and modifiedAt), or undefined when its release is not pending.
 */
export async function markedFailed(
  secret: V1Secret,
  description: string,
  now = new Date(),
): Promise<{ secret: V1Secret; status: PendingStatus; since?: Date } | undefined> {
  const data = secret.data?.["release"];
  if (!data) throw new PaasError("internal", `storage secret ${secret.metadata?.name ?? "?"} has no release data`);
  const json = parseReleaseJsonExact(await decodeReleaseText(data));
  const info = (typeof json["info"] === "object" && json["info"] !== null ? json["info"] : {}) as Record<
    string,
    unknown
  >;
  const status = typeof info["status"] === "string" ? info["status"] : "";
  if (!isPendingStatus(status)) return undefined;
  const since = helmDate(info["last_deployed"]) ?? helmDate(info["first_deployed"]);
  json["info"] = { ...info, status: "failed", description };
  return {
    status,
    since,
    secret: {
      ...secret,
      metadata: {
        ...secret.metadata,
        labels: { ...secret.metadata?.labels, status: "failed", modifiedAt: String(Math.floor(now.getTime() / 1000)) },
      },
      data: { ...secret.data, release: await encodeReleaseData(JSON.stringify(json)) },
    },
  };
}

/** createReleaseRecovery implements ReleaseRecovery over the API server. */
export function createReleaseRecovery(opts: ReleaseRecoveryOptions): ReleaseRecovery {
  const kc = opts.kubeConfig;
  const timeout = opts.requestTimeoutMs ?? 30_000;
  const core = createApi(kc, timeout, CoreV1Api);
  const managed = opts.managedLabel ?? DEFAULT_MANAGED_LABEL;
  const writerFor = opts.writerFor ?? deployerUser;
  const log = opts.logger.child({ component: "recovery" });

  /** The storage records of a namespace (one release, or all), metadata only: names and labels, no release data. */
  async function listStorage(client: KubeConfig, namespace: string, release?: string): Promise<MetaItem[]> {
    const q = new URLSearchParams({
      labelSelector: release === undefined ? "owner=helm" : helmStorageSelector(release),
      fieldSelector: `type=${HELM_SECRET_TYPE}`,
    });
    const list = (await getJson(
      client,
      `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets?${q}`,
      AbortSignal.timeout(timeout),
      PARTIAL_METADATA_LIST,
    )) as {
      items?: MetaItem[];
    };
    return list.items ?? [];
  }

  return {
    async markPendingFailed(namespace, release, description) {
      assertNamespaceName(namespace);
      assertReleaseName(release);
      const asWriter = impersonating(kc, writerFor(namespace));
      const api = createApi(asWriter, timeout, CoreV1Api);
      const what = `repair release "${release}" in namespace "${namespace}"`;
      // A 409 means the record changed under us (a helm run that was not dead after all):
      // look again; it is either still pending (retry) or not any more (nothing to do).
      for (let attempt = 1; attempt <= 3; attempt++) {
        let secret: V1Secret;
        try {
          const newest = newestByRelease(await listStorage(asWriter, namespace, release)).get(release);
          // Helm writes the status label with the record: a newest revision not labelled
          // pending is not pending, and is not read (this check runs before every operation).
          if (!newest || !isPendingStatus(newest.metadata?.labels?.["status"])) return undefined;
          secret = await api.readNamespacedSecret({ name: newest.metadata!.name!, namespace });
        } catch (err) {
          if (httpCodeOf(err) === 404) continue; // deleted between list and read (uninstall): look again
          throw kubeError(err, what);
        }
        const marked = await markedFailed(secret, description);
        if (!marked) return undefined;
        try {
          await api.replaceNamespacedSecret({ name: secret.metadata!.name!, namespace, body: marked.secret });
        } catch (err) {
          if (httpCodeOf(err) === 409 || httpCodeOf(err) === 404) continue;
          throw kubeError(err, what);
        }
        const repaired: PendingRevision = {
          namespace,
          release,
          revision: secretRevision(secret),
          status: marked.status,
          since: marked.since,
        };
        log.warn({ ...repaired, description }, "marked a stuck release failed");
        return repaired;
      }
      throw new PaasError("conflict", `${what}: its record kept changing; retry later`);
    },

    async newestRevision(namespace, release) {
      assertNamespaceName(namespace);
      assertReleaseName(release);
      let newest: MetaItem | undefined;
      try {
        newest = newestByRelease(await listStorage(kc, namespace, release)).get(release);
      } catch (err) {
        throw kubeError(err, `list the revisions of release "${release}" in namespace "${namespace}"`);
      }
      return newest
        ? { revision: secretRevision(newest), status: newest.metadata?.labels?.["status"] ?? "" }
        : undefined;
    },

    async stampRevision(namespace, release, revision, labels) {
      assertNamespaceName(namespace);
      assertReleaseName(release);
      const api = createApi(impersonating(kc, writerFor(namespace)), timeout, CoreV1Api);
      const name = `sh.helm.release.v1.${release}.v${revision}`;
      const what = `label revision ${revision} of release "${release}" in namespace "${namespace}"`;
      for (let attempt = 1; attempt <= 3; attempt++) {
        try {
          const secret = await api.readNamespacedSecret({ name, namespace });
          secret.metadata = { ...secret.metadata, labels: { ...secret.metadata?.labels, ...labels } };
          await api.replaceNamespacedSecret({ name, namespace, body: secret });
          return;
        } catch (err) {
          if (httpCodeOf(err) === 409) continue;
          throw kubeError(err, what);
        }
      }
      throw new PaasError("conflict", `${what}: its record kept changing; retry later`);
    },

    async listPending(prefix) {
      let names: string[];
      try {
        const list = await core.listNamespace({ labelSelector: `${managed.key}=${managed.value}` });
        names = list.items
          .filter((ns) => ns.metadata?.name?.startsWith(prefix) && !ns.metadata.deletionTimestamp)
          .map((ns) => ns.metadata!.name!)
          .sort();
      } catch (err) {
        throw kubeError(err, "list namespaces");
      }
      const found: PendingRevision[] = [];
      const inNamespace = async (namespace: string): Promise<void> => {
        let newest: Map<string, MetaItem>;
        try {
          newest = newestByRelease(await listStorage(kc, namespace));
        } catch (err) {
          // Not (yet) provisioned for our reads, or deleted meanwhile: nothing of ours to repair there.
          const code = httpCodeOf(err);
          if (code === 403 || code === 404) {
            log.warn({ namespace, code }, "cannot list release storage; skipped");
            return;
          }
          throw kubeError(err, `list releases in namespace "${namespace}"`);
        }
        for (const [release, item] of newest) {
          const status = item.metadata?.labels?.["status"];
          if (!isPendingStatus(status)) continue;
          // The label says pending; the record says since when (and is what Helm itself trusts).
          let since: Date | undefined;
          let recorded: string = status;
          try {
            const secret = await core.readNamespacedSecret({ name: item.metadata!.name!, namespace });
            const json = parseReleaseJsonExact(await decodeReleaseText(secret.data?.["release"] ?? ""));
            const info = (json["info"] ?? {}) as Record<string, unknown>;
            recorded = typeof info["status"] === "string" ? info["status"] : "";
            since = helmDate(info["last_deployed"]) ?? helmDate(info["first_deployed"]);
          } catch (err) {
            if (httpCodeOf(err) === 404) continue;
            if (err instanceof PaasError)
              log.warn({ namespace, release, err }, "undecodable release record; reported by its label");
            else throw kubeError(err, `read release "${release}" in namespace "${namespace}"`);
          }
          if (!isPendingStatus(recorded)) continue;
          found.push({ namespace, release, revision: secretRevision(item), status: recorded, since });
        }
      };
      const queue = [...names];
      const workers = Array.from({ length: Math.min(opts.concurrency ?? 8, queue.length) }, async () => {
        for (let ns = queue.shift(); ns !== undefined; ns = queue.shift()) await inNamespace(ns);
      });
      await Promise.all(workers);
      return found.sort((a, b) => a.namespace.localeCompare(b.namespace) || a.release.localeCompare(b.release));
    },
  };
}
