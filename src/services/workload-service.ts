import type { ServiceImpl } from "@connectrpc/connect";
import {
  DeletePersistentVolumeClaimResponseSchema,
  DeletePodResponseSchema,
  RebuildStatefulSetMemberResponseSchema,
  RestartWorkloadResponseSchema,
  ScaleWorkloadResponseSchema,
  WorkloadService,
} from "../../gen/paas/v1/workload_pb.js";
import type { KubeClient } from "../kube/kube-types.ts";
import type { WorkloadClient } from "../kube/workloads/workload-types.ts";
import type { OperationEngine } from "../operations/engine.ts";
import type { WorkloadVerbs } from "../operations/verbs/all-verbs.ts";
import { toWorkload } from "../operations/verbs/workload-common.ts";
import { answerOf } from "./submitted.ts";
import { submitOptions } from "./submit-options.ts";

/** WorkloadServiceDeps are what the workload handlers need. */
export interface WorkloadServiceDeps {
  kube: Pick<KubeClient, "getNamespace">;
  workloads: WorkloadClient;
  engine: OperationEngine;
  verbs: WorkloadVerbs;
}

/** createWorkloadService implements paas.v1.WorkloadService: reads directly, every mutation through the engine. */
export function createWorkloadService(deps: WorkloadServiceDeps): ServiceImpl<typeof WorkloadService> {
  const { kube, workloads, engine, verbs } = deps;
  return {
    async listWorkloads(req) {
      await kube.getNamespace(req.namespace);
      const all = await workloads.list(req.namespace);
      return {
        workloads: all.filter((w) => !req.release || w.helmRelease === req.release).map(toWorkload),
      };
    },
    async scaleWorkload(req, ctx) {
      return answerOf(
        ScaleWorkloadResponseSchema,
        await engine.submit(verbs.scaleWorkload, req, submitOptions(req, ctx)),
      );
    },
    async restartWorkload(req, ctx) {
      return answerOf(
        RestartWorkloadResponseSchema,
        await engine.submit(verbs.restartWorkload, req, submitOptions(req, ctx)),
      );
    },
    async deletePod(req, ctx) {
      return answerOf(DeletePodResponseSchema, await engine.submit(verbs.deletePod, req, submitOptions(req, ctx)));
    },
    async deletePersistentVolumeClaim(req, ctx) {
      return answerOf(
        DeletePersistentVolumeClaimResponseSchema,
        await engine.submit(verbs.deletePersistentVolumeClaim, req, submitOptions(req, ctx)),
      );
    },
    async rebuildStatefulSetMember(req, ctx) {
      return answerOf(
        RebuildStatefulSetMemberResponseSchema,
        await engine.submit(verbs.rebuildStatefulSetMember, req, submitOptions(req, ctx)),
      );
    },
  };
}
