import type { KubeConfig } from "@kubernetes/client-node";
import { kubeError } from "./api-errors.ts";
import { getJson } from "./api-http.ts";

// Which kinds are namespaced, from the API server's own discovery documents, so that the
// render guard never trusts a hard-coded list: a CRD installed by the platform's admins
// (cluster-scoped or not) is classified like any built-in kind.

/** KindScopes maps "apiVersion/Kind" (e.g. "apps/v1/Deployment", "v1/Namespace") to true when the kind is namespaced. */
export type KindScopes = Record<string, boolean>;

// Aggregated discovery (apidiscovery.k8s.io/v2, GA in Kubernetes 1.30): every group,
// version and resource with its scope in one answer per root. Older servers answer the
// plain APIGroupList instead, and then each group version is fetched.
const AGGREGATED =
  "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

interface DiscoveryResource {
  resource?: string;
  responseKind?: { kind?: string };
  scope?: string;
}
interface DiscoveryGroup {
  metadata?: { name?: string };
  versions?: Array<{ version?: string; resources?: DiscoveryResource[] }>;
}
interface ApiResourceList {
  groupVersion?: string;
  resources?: Array<{ name?: string; kind?: string; namespaced?: boolean }>;
}

/** scopesFromAggregated reads an APIGroupDiscoveryList (of /api or /apis) into `out`. */
export function scopesFromAggregated(list: { items?: DiscoveryGroup[] }, out: KindScopes = {}): KindScopes {
  for (const group of list.items ?? []) {
    const name = group.metadata?.name ?? "";
    for (const v of group.versions ?? []) {
      if (!v.version) continue;
      const apiVersion = name ? `${name}/${v.version}` : v.version;
      for (const r of v.resources ?? []) {
        const kind = r.responseKind?.kind;
        if (!kind || !r.resource || r.resource.includes("/")) continue;
        out[`${apiVersion}/${kind}`] = r.scope === "Namespaced";
      }
    }
  }
  return out;
}

/** scopesFromResourceList reads one group version's APIResourceList (legacy discovery) into `out`. */
export function scopesFromResourceList(list: ApiResourceList, out: KindScopes = {}): KindScopes {
  const gv = list.groupVersion ?? "";
  for (const r of list.resources ?? []) {
    // Subresources (pods/log) share their parent's kind; they are not objects of their own.
    if (!r.kind || !r.name || r.name.includes("/")) continue;
    out[`${gv}/${r.kind}`] = r.namespaced === true;
  }
  return out;
}

/** fetchKindScopes asks the API server which kinds it serves and whether each is namespaced. */
export async function fetchKindScopes(kc: KubeConfig, signal: AbortSignal): Promise<KindScopes> {
  const out: KindScopes = {};
  for (const root of ["/api", "/apis"]) {
    const doc = (await getJson(kc, root, signal, AGGREGATED)) as {
      kind?: string;
      items?: DiscoveryGroup[];
      versions?: string[];
      groups?: unknown[];
    };
    if (doc.kind === "APIGroupDiscoveryList") {
      scopesFromAggregated(doc, out);
      continue;
    }
    // Legacy discovery: /api answers APIVersions {versions}, /apis APIGroupList {groups}.
    const groupVersions =
      root === "/api"
        ? (doc.versions ?? []).map((v) => `/api/${v}`)
        : ((doc.groups ?? []) as Array<{ versions?: Array<{ groupVersion?: string }> }>).flatMap((g) =>
            (g.versions ?? []).map((v) => `/apis/${v.groupVersion}`),
          );
    const lists = await Promise.all(groupVersions.map((p) => getJson(kc, p, signal).catch(() => undefined)));
    for (const list of lists) if (list) scopesFromResourceList(list as ApiResourceList, out);
  }
  return out;
}

/** DiscoveryCache keeps the kind scopes for `ttlMs`; concurrent callers share one fetch. */
export class DiscoveryCache {
  private readonly load: (signal: AbortSignal) => Promise<KindScopes>;
  private readonly ttlMs: number;
  private readonly timeoutMs: number;
  private value: KindScopes | undefined;
  private fetchedAt = 0;
  private inflight: Promise<KindScopes> | undefined;
  private readonly now: () => number;

  constructor(opts: {
    load: (signal: AbortSignal) => Promise<KindScopes>;
    ttlMs?: number;
    timeoutMs?: number;
    now?: () => number;
  }) {
    this.load = opts.load;
    this.ttlMs = opts.ttlMs ?? 5 * 60_000;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.now = opts.now ?? Date.now;
  }

  /** get returns the cached scopes, fetching them when absent or older than the TTL. */
  async get(): Promise<KindScopes> {
    if (this.value && this.now() - this.fetchedAt < this.ttlMs) return this.value;
    this.inflight ??= this.load(AbortSignal.timeout(this.timeoutMs))
      .then((v) => {
        this.value = v;
        this.fetchedAt = this.now();
        return v;
      })
      .catch((err: unknown) => {
        throw kubeError(err, "read API discovery");
      })
      .finally(() => {
        this.inflight = undefined;
      });
    return this.inflight;
  }

  /** invalidate makes the next get fetch again (a kind was met that discovery did not list). */
  invalidate(): void {
    this.value = undefined;
  }
}
