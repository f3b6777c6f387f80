import type { ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import {
  InstallReleaseResponseSchema,
  RecoverReleaseResponseSchema,
  ReleaseService,
  RollbackReleaseResponseSchema,
  UninstallReleaseResponseSchema,
  UpgradeReleaseResponseSchema,
  WatchEventKind,
  WatchReleaseStatusResponseSchema,
  type WatchReleaseStatusResponse,
} from "../../gen/paas/v1/release_pb.js";
import { chartSourceFromLabels } from "../helm/chart-labels.ts";
import { PaasError } from "../errors.ts";
import type { HelmClient } from "../helm/helm-client.ts";
import type { KubeClient, ReleaseWatchEvent, StoredRelease } from "../kube/kube-types.ts";
import type { OperationEngine } from "../operations/engine.ts";
import type { ReleaseLocks } from "../domain/ports.ts";
import type { Lifecycle } from "../operations/lifecycle.ts";
import type { Verbs } from "../operations/verbs/all-verbs.ts";
import { toPodStatus, toRelease, toRevision } from "../mapping/release-mapping.ts";
import { answerOf } from "./submitted.ts";
import { submitOptions } from "./submit-options.ts";

/** ReleaseDeps are what the release handlers need; tests pass fakes. */
export interface ReleaseDeps {
  helm: HelmClient;
  kube: KubeClient;
  /** Runs every mutation as an operation (src/operations/). */
  engine: OperationEngine;
  verbs: Pick<Verbs, "install" | "upgrade" | "rollback" | "uninstall" | "recover">;
  /** Who holds a release's Lease, for locked_by. */
  locks: Pick<ReleaseLocks, "holderOf">;
  lifecycle: Lifecycle;
}

/** createReleaseService implements paas.v1.ReleaseService: proto ↔ domain mapping only; mutations are the engine's. */
export function createReleaseService(deps: ReleaseDeps): ServiceImpl<typeof ReleaseService> {
  const { helm, kube, engine, verbs, lifecycle } = deps;

  const stored = async (namespace: string, name: string): Promise<StoredRelease> => {
    const found = await kube.getStoredRelease(namespace, name);
    if (!found) throw new PaasError("not_found", `Release ${name} not found in namespace ${namespace}`);
    return found;
  };

  // A read that cannot learn the holder still answers: locked_by is left empty.
  const lockedBy = (namespace: string, name: string): Promise<string> =>
    deps.locks.holderOf(namespace, name).then(
      (h) => (h?.live ? h.holder : ""),
      () => "",
    );

  const current = async (namespace: string, name: string) => {
    const [found, holder] = await Promise.all([stored(namespace, name), lockedBy(namespace, name)]);
    return toRelease(found.release, chartSourceFromLabels(found.labels), { labels: found.labels, lockedBy: holder });
  };

  return {
    async installRelease(req, ctx) {
      return answerOf(InstallReleaseResponseSchema, await engine.submit(verbs.install, req, submitOptions(req, ctx)));
    },

    async upgradeRelease(req, ctx) {
      return answerOf(UpgradeReleaseResponseSchema, await engine.submit(verbs.upgrade, req, submitOptions(req, ctx)));
    },

    async rollbackRelease(req, ctx) {
      return answerOf(RollbackReleaseResponseSchema, await engine.submit(verbs.rollback, req, submitOptions(req, ctx)));
    },

    async uninstallRelease(req, ctx) {
      return answerOf(
        UninstallReleaseResponseSchema,
        await engine.submit(verbs.uninstall, req, submitOptions(req, ctx)),
      );
    },

    async recoverRelease(req, ctx) {
      return answerOf(RecoverReleaseResponseSchema, await engine.submit(verbs.recover, req, submitOptions(req, ctx)));
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
