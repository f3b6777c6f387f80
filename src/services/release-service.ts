import type { ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import type { Duration } from "@bufbuild/protobuf/wkt";
import {
  ReleaseService,
  WatchEventKind,
  WatchReleaseStatusResponseSchema,
  type WatchReleaseStatusResponse,
} from "../../gen/paas/v1/release_pb.js";
import { chartLabels, chartSourceFromLabels } from "../chart-labels.ts";
import { PaasError } from "../errors.ts";
import type { ChartSource, HelmClient, JsonObject } from "../helm/types.ts";
import type { KubeClient, ReleaseWatchEvent, StoredRelease } from "../kube/types.ts";
import type { OperationQueue } from "../operation-queue.ts";
import type { ChartCatalog } from "../catalog/catalog.ts";
import { validateValues, type ValuesLimits } from "../validation.ts";
import type { Lifecycle } from "../lifecycle.ts";
import { toPodStatus, toRelease, toRevision } from "./mapping.ts";
import type { NamespaceManager } from "./namespace-service.ts";

/** ReleaseDeps are what the release handlers need; tests pass fakes. */
export interface ReleaseDeps {
  helm: HelmClient;
  kube: KubeClient;
  queue: OperationQueue;
  lifecycle: Lifecycle;
  namespaces: NamespaceManager;
  /** The chart sources callers may use (src/catalog/). */
  catalog: ChartCatalog;
  /** Limits on values; DEFAULT_VALUES_LIMITS when absent. */
  valuesLimits?: ValuesLimits;
  helmTimeoutSeconds: number;
  maxHelmTimeoutSeconds: number;
}

/** createReleaseService implements paas.v1.ReleaseService: proto ↔ domain mapping and ordering only. */
export function createReleaseService(deps: ReleaseDeps): ServiceImpl<typeof ReleaseService> {
  const { helm, kube, queue, lifecycle } = deps;

  // Mutations of one release run one at a time, in arrival order; a caller that gave up
  // while queued does not start helm, but a started helm is never interrupted for it.
  const mutate = <T>(namespace: string, name: string, signal: AbortSignal, fn: () => Promise<T>) => {
    lifecycle.assertAcceptingMutations();
    return queue.run(`${namespace}/${name}`, async () => {
      if (signal.aborted) throw new PaasError("unavailable", "the call was cancelled before it started");
      return fn();
    });
  };

  const timeoutOf = (d: Duration | undefined) => helmTimeout(d, deps.helmTimeoutSeconds, deps.maxHelmTimeoutSeconds);

  const stored = async (namespace: string, name: string): Promise<StoredRelease> => {
    const found = await kube.getStoredRelease(namespace, name);
    if (!found) throw new PaasError("not_found", `Release ${name} not found in namespace ${namespace}`);
    return found;
  };

  return {
    async installRelease(req, ctx) {
      const source = deps.catalog.resolve(req.chart, req.version, req.repoUrl);
      validateValues(req.values, deps.valuesLimits);
      const timeoutSeconds = timeoutOf(req.timeout);
      return mutate(req.namespace, req.name, ctx.signal, async () => {
        if (req.createNamespace) await deps.namespaces.ensureDefault(req.namespace);
        else await deps.namespaces.requireManaged(req.namespace);
        const info = await helm.install({
          namespace: req.namespace,
          name: req.name,
          chart: source,
          values: values(req.values),
          createNamespace: false,
          wait: req.wait,
          timeoutSeconds,
          labels: chartLabels(source),
          signal: lifecycle.helmSignal,
        });
        return { release: toRelease(info, source) };
      });
    },

    async upgradeRelease(req, ctx) {
      const given = req.chart ? deps.catalog.resolve(req.chart, req.version, req.repoUrl) : undefined;
      validateValues(req.values, deps.valuesLimits);
      if (req.resetValues && req.reuseValues === true) {
        throw new PaasError("invalid_argument", "reset_values and reuse_values cannot both be true");
      }
      const timeoutSeconds = timeoutOf(req.timeout);
      return mutate(req.namespace, req.name, ctx.signal, async () => {
        // Helm answers "has no deployed releases" for a release that does not exist at all;
        // look first so that the caller gets NOT_FOUND.
        const current = await stored(req.namespace, req.name);
        const source = given ?? recordedSource(current, req.version);
        // A recorded source is pulled again: it must still be in the catalogue.
        if (!given) deps.catalog.check(source);
        const info = await helm.upgrade({
          namespace: req.namespace,
          name: req.name,
          chart: source,
          values: values(req.values),
          resetValues: req.resetValues,
          reuseValues: req.resetValues ? false : (req.reuseValues ?? true),
          wait: req.wait,
          timeoutSeconds,
          labels: chartLabels(source),
          signal: lifecycle.helmSignal,
        });
        return { release: toRelease(info, withoutVersion(source)) };
      });
    },

    async rollbackRelease(req, ctx) {
      if (req.revision < 0) throw new PaasError("invalid_argument", "revision must be 0 (previous) or a positive revision");
      return mutate(req.namespace, req.name, ctx.signal, async () => {
        await stored(req.namespace, req.name);
        await helm.rollback({
          namespace: req.namespace,
          name: req.name,
          revision: req.revision,
          wait: false,
          timeoutSeconds: deps.helmTimeoutSeconds,
          // No shutdown signal: helm rollback dies on SIGTERM and would leave the release
          // pending-rollback. It runs to completion even during shutdown.
        });
        const now = await stored(req.namespace, req.name);
        const target = req.revision === 0 ? "the previous revision" : `revision ${req.revision}`;
        return {
          release: toRelease(now.release, chartSourceFromLabels(now.labels)),
          message: `Release ${req.name} rolled back to ${target} (now revision ${now.release.revision})`,
        };
      });
    },

    async uninstallRelease(req, ctx) {
      return mutate(req.namespace, req.name, ctx.signal, async () => {
        await helm.uninstall({
          namespace: req.namespace,
          name: req.name,
          timeoutSeconds: deps.helmTimeoutSeconds,
          // No shutdown signal, as for rollback: helm uninstall does not catch SIGTERM.
        });
        return { message: `Release ${req.name} uninstalled from namespace ${req.namespace}` };
      });
    },

    async getRelease(req) {
      const found = await stored(req.namespace, req.name);
      return { release: toRelease(found.release, chartSourceFromLabels(found.labels)) };
    },

    async listReleaseRevisions(req) {
      const revisions = await helm.history(req.namespace, req.name);
      return { revisions: revisions.map(toRevision) };
    },

    async getReleaseStatus(req) {
      const [found, pods] = await Promise.all([
        stored(req.namespace, req.name),
        kube.listReleasePods(req.namespace, req.name).then(
          (list) => ({ list, error: "" }),
          (err: unknown) => ({ list: [], error: err instanceof PaasError ? err.message : "pods could not be read" }),
        ),
      ]);
      const now = new Date();
      return {
        release: toRelease(found.release, chartSourceFromLabels(found.labels)),
        pods: pods.list.map((p) => toPodStatus(p, now)),
        podRetrievalError: pods.error,
      };
    },

    async listReleases(req) {
      const releases = await helm.list(req.namespace);
      return { releases: releases.map((r) => toRelease(r)) };
    },

    async *watchReleaseStatus(req, ctx) {
      const signal = AbortSignal.any([ctx.signal, lifecycle.streamsSignal]);
      for await (const event of kube.watchRelease(req.namespace, req.name, signal)) {
        yield toWatchResponse(event);
      }
    },
  };
}

/** recordedSource is the chart recorded at install; without a new version the deployed one is kept. */
function recordedSource(current: StoredRelease, version: string): ChartSource {
  const recorded = chartSourceFromLabels(current.labels);
  if (!recorded) {
    throw new PaasError("failed_precondition", `Release ${current.release.name} has no recorded chart reference; pass chart`);
  }
  // Reusing the recorded chart must not silently move to a newer chart version: pin the
  // deployed version unless the caller asks for another.
  return { ...recorded, version: version || current.release.chartVersion };
}

function withoutVersion(source: ChartSource): ChartSource {
  return source.repoUrl ? { ref: source.ref, repoUrl: source.repoUrl } : { ref: source.ref };
}

function values(v: JsonObject | undefined): JsonObject {
  return v ?? {};
}

/** helmTimeout turns a request's Duration into whole seconds within the server's bounds. */
export function helmTimeout(d: Duration | undefined, fallback: number, max: number): number {
  if (d === undefined) return fallback;
  const seconds = Number(d.seconds) + d.nanos / 1e9;
  if (!(seconds >= 1)) throw new PaasError("invalid_argument", "timeout must be at least 1s");
  if (seconds > max) throw new PaasError("invalid_argument", `timeout must be at most ${max}s`);
  return Math.ceil(seconds);
}

const kinds: Record<ReleaseWatchEvent["kind"], WatchEventKind> = {
  snapshot: WatchEventKind.SNAPSHOT,
  pod_added: WatchEventKind.POD_ADDED,
  pod_modified: WatchEventKind.POD_MODIFIED,
  pod_deleted: WatchEventKind.POD_DELETED,
  release_changed: WatchEventKind.RELEASE_CHANGED,
  release_uninstalled: WatchEventKind.RELEASE_UNINSTALLED,
};

function toWatchResponse(event: ReleaseWatchEvent): WatchReleaseStatusResponse {
  const now = new Date();
  const msg = create(WatchReleaseStatusResponseSchema, { kind: kinds[event.kind] });
  switch (event.kind) {
    case "snapshot":
      if (event.release) msg.release = toRelease(event.release);
      msg.pods = event.pods.map((p) => toPodStatus(p, now));
      break;
    case "release_changed":
      msg.release = toRelease(event.release);
      break;
    case "pod_added":
    case "pod_modified":
    case "pod_deleted":
      msg.pod = toPodStatus(event.pod, now);
      break;
    case "release_uninstalled":
      break;
  }
  return msg;
}
