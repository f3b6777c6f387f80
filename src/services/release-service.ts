import type { ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import type { Duration } from "@bufbuild/protobuf/wkt";
import {
  InstallReleaseRequestSchema,
  InstallReleaseResponseSchema,
  RecoverReleaseRequestSchema,
  RecoverReleaseResponseSchema,
  ReleaseService,
  RollbackReleaseRequestSchema,
  RollbackReleaseResponseSchema,
  UninstallReleaseRequestSchema,
  UninstallReleaseResponseSchema,
  UpgradeReleaseRequestSchema,
  UpgradeReleaseResponseSchema,
  WatchEventKind,
  WatchReleaseStatusResponseSchema,
  type WatchReleaseStatusResponse,
} from "../../gen/paas/v1/release_pb.js";
import { chartLabels, chartSourceFromLabels } from "../helm/chart-labels.ts";
import { PaasError } from "../errors.ts";
import type { HelmClient } from "../helm/helm-client.ts";
import type { ChartSource, JsonObject } from "../domain/release.ts";
import type { KubeClient, ReleaseWatchEvent, StoredRelease } from "../kube/kube-types.ts";
import type { Operations } from "../operations/operations.ts";
import type { ReleaseLocks, ReleaseRecovery } from "../operations/ports.ts";
import type { ChartCatalog } from "../catalog/catalog.ts";
import { validateValues, type ValuesLimits } from "../domain/validation.ts";
import type { Lifecycle } from "../operations/lifecycle.ts";
import { toPodStatus, toRelease, toRevision } from "./release-mapping.ts";
import type { NamespaceManager } from "./namespace-service.ts";

/** ReleaseDeps are what the release handlers need; tests pass fakes. */
export interface ReleaseDeps {
  helm: HelmClient;
  kube: KubeClient;
  /** Orders, locks and records every mutation (src/operations/). */
  operations: Operations;
  /** Who holds a release's Lease, for locked_by. */
  locks: Pick<ReleaseLocks, "holderOf">;
  /** Stamps the caller and operation on a rollback's revision. */
  recovery: Pick<ReleaseRecovery, "stampRevision">;
  lifecycle: Lifecycle;
  namespaces: NamespaceManager;
  /** The chart sources callers may use (src/catalog/). */
  catalog: ChartCatalog;
  /** Limits on values; DEFAULT_VALUES_LIMITS when absent. */
  valuesLimits?: ValuesLimits;
  helmTimeoutSeconds: number;
  maxHelmTimeoutSeconds: number;
}

const M = (name: string) => `${ReleaseService.typeName}/${name}`;

/** createReleaseService implements paas.v1.ReleaseService: proto ↔ domain mapping and ordering only. */
export function createReleaseService(deps: ReleaseDeps): ServiceImpl<typeof ReleaseService> {
  const { helm, kube, operations, lifecycle } = deps;

  const timeoutOf = (d: Duration | undefined) => helmTimeout(d, deps.helmTimeoutSeconds, deps.maxHelmTimeoutSeconds);

  const stored = async (namespace: string, name: string): Promise<StoredRelease> => {
    const found = await kube.getStoredRelease(namespace, name);
    if (!found) throw new PaasError("not_found", `Release ${name} not found in namespace ${namespace}`);
    return found;
  };

  // A read that cannot learn the holder still answers: locked_by is left empty.
  const lockedBy = (namespace: string, name: string): Promise<string> =>
    deps.locks.holderOf(namespace, name).then((h) => (h?.live ? h.holder : ""), () => "");

  const current = async (namespace: string, name: string) => {
    const [found, holder] = await Promise.all([stored(namespace, name), lockedBy(namespace, name)]);
    return toRelease(found.release, chartSourceFromLabels(found.labels), { labels: found.labels, lockedBy: holder });
  };

  return {
    async installRelease(req, ctx) {
      const source = deps.catalog.resolve(req.chart, req.version, req.repoUrl);
      validateValues(req.values, deps.valuesLimits);
      const timeoutSeconds = timeoutOf(req.timeout);
      return operations.mutate({
        method: M("InstallRelease"),
        namespace: req.namespace,
        release: req.name,
        request: { schema: InstallReleaseRequestSchema, message: req },
        response: InstallReleaseResponseSchema,
        chartReference: referenceOf(source),
        chartVersion: req.version,
        values: req.values,
        stoppableOnShutdown: true,
        versionOf: (res) => res.release?.chartVersion ?? "",
        run: async (op) => {
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
            labels: { ...chartLabels(source), ...op.labels },
            signal: op.signal,
          });
          return create(InstallReleaseResponseSchema, { release: toRelease(info, source, { labels: op.labels }) });
        },
      }, ctx);
    },

    async upgradeRelease(req, ctx) {
      const given = req.chart ? deps.catalog.resolve(req.chart, req.version, req.repoUrl) : undefined;
      validateValues(req.values, deps.valuesLimits);
      if (req.resetValues && req.reuseValues === true) {
        throw new PaasError("invalid_argument", "reset_values and reuse_values cannot both be true");
      }
      const timeoutSeconds = timeoutOf(req.timeout);
      return operations.mutate({
        method: M("UpgradeRelease"),
        namespace: req.namespace,
        release: req.name,
        request: { schema: UpgradeReleaseRequestSchema, message: req },
        response: UpgradeReleaseResponseSchema,
        chartReference: given ? referenceOf(given) : "",
        chartVersion: req.version,
        values: req.values,
        stoppableOnShutdown: true,
        versionOf: (res) => res.release?.chartVersion ?? "",
        run: async (op) => {
          // Helm answers "has no deployed releases" for a release that does not exist at all;
          // look first so that the caller gets NOT_FOUND.
          const found = await stored(req.namespace, req.name);
          const source = given ?? recordedSource(found, req.version);
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
            labels: { ...chartLabels(source), ...op.labels },
            signal: op.signal,
          });
          return create(UpgradeReleaseResponseSchema, { release: toRelease(info, withoutVersion(source), { labels: op.labels }) });
        },
      }, ctx);
    },

    async rollbackRelease(req, ctx) {
      if (req.revision < 0) throw new PaasError("invalid_argument", "revision must be 0 (previous) or a positive revision");
      return operations.mutate({
        method: M("RollbackRelease"),
        namespace: req.namespace,
        release: req.name,
        request: { schema: RollbackReleaseRequestSchema, message: req },
        response: RollbackReleaseResponseSchema,
        versionOf: (res) => res.release?.chartVersion ?? "",
        run: async (op) => {
          await stored(req.namespace, req.name);
          await helm.rollback({
            namespace: req.namespace,
            name: req.name,
            revision: req.revision,
            wait: false,
            timeoutSeconds: deps.helmTimeoutSeconds,
            // Not stopped on shutdown: helm rollback dies on SIGTERM and would leave the release
            // pending-rollback. Only a lost Lease stops it (the API is gone then anyway).
            signal: op.signal,
          });
          const now = await stored(req.namespace, req.name);
          // helm copied the labels of the revision it returned to: record who made this one.
          await deps.recovery.stampRevision(req.namespace, req.name, now.release.revision, op.labels);
          const labels = { ...now.labels, ...op.labels };
          const target = req.revision === 0 ? "the previous revision" : `revision ${req.revision}`;
          return create(RollbackReleaseResponseSchema, {
            release: toRelease(now.release, chartSourceFromLabels(labels), { labels }),
            message: `Release ${req.name} rolled back to ${target} (now revision ${now.release.revision})`,
          });
        },
      }, ctx);
    },

    async uninstallRelease(req, ctx) {
      return operations.mutate({
        method: M("UninstallRelease"),
        namespace: req.namespace,
        release: req.name,
        request: { schema: UninstallReleaseRequestSchema, message: req },
        response: UninstallReleaseResponseSchema,
        run: async (op) => {
          await helm.uninstall({
            namespace: req.namespace,
            name: req.name,
            timeoutSeconds: deps.helmTimeoutSeconds,
            // As for rollback: helm uninstall does not catch SIGTERM; only a lost Lease stops it.
            signal: op.signal,
          });
          return create(UninstallReleaseResponseSchema, { message: `Release ${req.name} uninstalled from namespace ${req.namespace}` });
        },
      }, ctx);
    },

    async recoverRelease(req, ctx) {
      return operations.mutate({
        method: M("RecoverRelease"),
        namespace: req.namespace,
        release: req.name,
        request: { schema: RecoverReleaseRequestSchema, message: req },
        response: RecoverReleaseResponseSchema,
        // The explicit repair never waits: a live Lease means a live operation, left alone.
        waitMs: 0,
        repairFirst: false,
        outcomeOf: (res) => (res.recovered ? "recovered" : "succeeded"),
        run: async (op) => {
          await stored(req.namespace, req.name);
          const fixed = await operations.repairHeld(req.namespace, req.name, op.id, op.call);
          const now = await stored(req.namespace, req.name);
          return create(RecoverReleaseResponseSchema, {
            release: toRelease(now.release, chartSourceFromLabels(now.labels), { labels: now.labels }),
            recovered: fixed !== undefined,
            message: fixed
              ? `Release ${req.name}: revision ${fixed.revision} was ${fixed.status} with no live operation; marked failed`
              : `Release ${req.name} is ${now.release.status}; nothing to recover`,
          });
        },
      }, ctx);
    },

    async getRelease(req) {
      return { release: await current(req.namespace, req.name) };
    },

    async listReleaseRevisions(req) {
      const revisions = await helm.history(req.namespace, req.name);
      return { revisions: revisions.map(toRevision) };
    },

    async getReleaseStatus(req) {
      const [release, pods] = await Promise.all([
        current(req.namespace, req.name),
        kube.listReleasePods(req.namespace, req.name).then(
          (list) => ({ list, error: "" }),
          (err: unknown) => ({ list: [], error: err instanceof PaasError ? err.message : "pods could not be read" }),
        ),
      ]);
      const now = new Date();
      return {
        release,
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

/** referenceOf is the chart reference as the audit log records it. */
function referenceOf(source: ChartSource): string {
  return source.repoUrl ? `${source.repoUrl.replace(/\/+$/, "")}/${source.ref}` : source.ref;
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
