import { type CoreV1Api, KubeConfig, type V1Pod, type V1Secret } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { PaasError } from "../errors.ts";
import { kubeError } from "./api/api-errors.ts";
import { decodeStorageSecret, newestStorageSecret, storedReleaseFromSecret } from "./storage/helm-storage.ts";
import { createCoreApi, getJson } from "./api/api-http.ts";
import type { Backoff, WatchSource } from "./watch/list-watch.ts";
import { assertNamespaceName, assertReleaseName } from "../domain/names.ts";
import { createNamespaceOps, type ManagedLabel } from "./tenancy/namespaces.ts";
import type { TenantRoles } from "./tenancy/tenant-objects.ts";
import type { PodSecurityLevel } from "../domain/pod-security-levels.ts";
import { summarizePod } from "./watch/pod-status.ts";
import { watchReleaseEvents } from "./watch/release-watch.ts";
import { helmStorageSelector, isReleasePod } from "./watch/release-pods.ts";
import type { KubeClient, PodInfo, ReleaseWatchEvent, StoredRelease } from "./kube-types.ts";
import { watchStream } from "./watch/watch-stream.ts";
import { type PodMatcher, podMatchersFromManifest } from "./watch/workload-pods.ts";
import { type WorkloadReplicas, workloadsFromManifest } from "./watch/workload-replicas.ts";

/** KubeClientOptions configure createKubeClient. */
export interface KubeClientOptions {
  /** Defaults to KubeConfig.loadFromDefault(): $KUBECONFIG, ~/.kube/config, else the in-cluster service account. */
  kubeConfig?: KubeConfig;
  /** The label that marks namespaces as ours. Default: DEFAULT_MANAGED_LABEL. */
  managedLabel?: ManagedLabel;
  logger: Logger;
  /** Deadline of one ordinary API request (watches excepted). Default 30 s. */
  requestTimeoutMs?: number;
  /** Deadline of ping. Default 3 s: a health check must answer quickly. */
  pingTimeoutMs?: number;
  /** Retry policy of watchRelease's watches. */
  watchBackoff?: Backoff;
  /** ClusterRoles the tenant RoleBindings refer to (k8s/rbac.yaml). Default DEFAULT_TENANT_ROLES. */
  tenantRoles?: TenantRoles;
  /** Pod Security level of new namespaces unless the caller asks for another. Default "restricted". */
  podSecurity?: PodSecurityLevel;
  /** How long ensureNamespace waits for new RoleBindings to take effect. Default 15 s. */
  rbacSettleMs?: number;
  /**
   * Namespaces whose pods may reach tenant pods (the ingress controller's), as a label
   * selector in kubectl syntax; their rule is added to every tenant's default-deny
   * NetworkPolicy. Absent: DEFAULT_INGRESS_NAMESPACE_SELECTOR
   * (kubernetes.io/metadata.name=ingress-nginx); "": no such rule. Invalid: createKubeClient
   * throws INVALID_ARGUMENT (parseNamespaceSelector checks it ahead).
   */
  ingressNamespaceSelector?: string;
}

/** DEFAULT_MANAGED_LABEL is app.kubernetes.io/managed-by=paas-operator. */
export const DEFAULT_MANAGED_LABEL: ManagedLabel = { key: "app.kubernetes.io/managed-by", value: "paas-operator" };

/** createKubeClient returns the KubeClient the service uses, talking to the cluster of `kubeConfig`. */
export function createKubeClient(opts: KubeClientOptions): KubeClient {
  const kc = opts.kubeConfig ?? defaultKubeConfig();
  const logger = opts.logger;
  const requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
  const api = createCoreApi(kc, requestTimeoutMs);
  const namespaces = createNamespaceOps({
    kc,
    api,
    managed: opts.managedLabel ?? DEFAULT_MANAGED_LABEL,
    logger,
    requestTimeoutMs,
    roles: opts.tenantRoles,
    podSecurity: opts.podSecurity,
    rbacSettleMs: opts.rbacSettleMs,
    ingressNamespaceSelector: opts.ingressNamespaceSelector,
  });

  async function listStorage(namespace: string, release: string): Promise<V1Secret[]> {
    const list = await api.listNamespacedSecret({ namespace, labelSelector: helmStorageSelector(release) });
    return list.items;
  }

  return {
    async ping(signal) {
      const timeout = AbortSignal.timeout(opts.pingTimeoutMs ?? 3_000);
      try {
        // /version needs no RBAC beyond the default system:public-info-viewer.
        await getJson(kc, "/version", signal ? AbortSignal.any([signal, timeout]) : timeout);
      } catch (err) {
        throw new PaasError("unavailable", "Kubernetes API unavailable", { cause: err });
      }
    },

    ensureNamespace: (name, quota, options) => namespaces.ensureNamespace(name, quota, options),
    getNamespace: (name) => namespaces.getNamespace(name),
    listNamespaces: (prefix) => namespaces.listNamespaces(prefix),
    deleteNamespace: (name) => namespaces.deleteNamespace(name),

    async listReleasePods(namespace, release): Promise<PodInfo[]> {
      assertNamespaceName(namespace);
      assertReleaseName(release);
      // The namespace's pods, filtered by isReleasePod: which pods are the release's
      // depends on its manifest too, not only on labels a server-side selector could match.
      let pods: V1Pod[];
      let newest: V1Secret | undefined;
      try {
        const [podList, secrets] = await Promise.all([
          api.listNamespacedPod({ namespace }),
          listStorage(namespace, release),
        ]);
        pods = podList.items;
        newest = newestStorageSecret(secrets);
      } catch (err) {
        throw kubeError(err, `list pods of release "${release}"`);
      }
      const matchers = newest ? await decodeMatchers(newest) : [];
      return pods
        .filter((p) => isReleasePod(p, release, matchers))
        .map(summarizePod)
        .sort((a, b) => a.name.localeCompare(b.name));
    },

    async releaseWorkloads(namespace, release): Promise<WorkloadReplicas[]> {
      assertNamespaceName(namespace);
      assertReleaseName(release);
      let newest: V1Secret | undefined;
      try {
        newest = newestStorageSecret(await listStorage(namespace, release));
      } catch (err) {
        throw kubeError(err, `read storage of release "${release}"`);
      }
      return newest ? workloadsFromManifest((await decodeStorageSecret(newest)).manifest) : [];
    },

    async getStoredRelease(namespace, release): Promise<StoredRelease | undefined> {
      assertNamespaceName(namespace);
      assertReleaseName(release);
      let newest: V1Secret | undefined;
      try {
        newest = newestStorageSecret(await listStorage(namespace, release));
      } catch (err) {
        throw kubeError(err, `read storage of release "${release}"`);
      }
      return newest ? storedReleaseFromSecret(newest) : undefined;
    },

    watchRelease(namespace, release, signal): AsyncIterable<ReleaseWatchEvent> {
      return watchWithErrors(kc, api, namespace, release, signal, logger, opts.watchBackoff);
    },
  };
}

// Like every failure of the stream, an invalid name surfaces on the first next().
async function* watchWithErrors(
  kc: KubeConfig,
  api: CoreV1Api,
  namespace: string,
  release: string,
  signal: AbortSignal,
  logger: Logger,
  backoff: Backoff | undefined,
): AsyncGenerator<ReleaseWatchEvent> {
  assertNamespaceName(namespace);
  assertReleaseName(release);
  const base = `/api/v1/namespaces/${encodeURIComponent(namespace)}`;
  // One namespace-wide pod watch, filtered by isReleasePod: no label selector expresses
  // "labelled for the release, or selected by one of its workloads".
  const pods: WatchSource<V1Pod> = {
    list: async () => {
      const l = await api.listNamespacedPod({ namespace });
      return { items: l.items, resourceVersion: l.metadata?.resourceVersion ?? "" };
    },
    watch: (rv, s) => watchStream(kc, `${base}/pods`, { resourceVersion: rv }, s),
  };
  const selector = helmStorageSelector(release);
  const secrets: WatchSource<V1Secret> = {
    list: async () => {
      const l = await api.listNamespacedSecret({ namespace, labelSelector: selector });
      return { items: l.items, resourceVersion: l.metadata?.resourceVersion ?? "" };
    },
    watch: (rv, s) => watchStream(kc, `${base}/secrets`, { resourceVersion: rv, labelSelector: selector }, s),
  };
  const decode = async (s: V1Secret) => {
    const d = await decodeStorageSecret(s);
    return { release: d.stored.release, podMatchers: podMatchersFromManifest(d.manifest) };
  };
  try {
    yield* watchReleaseEvents(
      { pods, secrets, decode, logger: logger.child({ namespace, release }), backoff },
      release,
      signal,
    );
  } catch (err) {
    throw kubeError(err, `watch release "${release}"`);
  }
}

async function decodeMatchers(secret: V1Secret): Promise<PodMatcher[]> {
  return podMatchersFromManifest((await decodeStorageSecret(secret)).manifest);
}

/** defaultKubeConfig loads $KUBECONFIG, ~/.kube/config, else the in-cluster service account. */
export function defaultKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}
