import { create } from "@bufbuild/protobuf";
import { DeletePodRequestSchema, DeletePodResponseSchema } from "../../../gen/paas/v1/workload_pb.js";
import { PaasError } from "../../errors.ts";
import type { Verb } from "../verb.ts";
import { checkName, requireManaged, WORKLOAD_SERVICE, type WorkloadVerbDeps } from "./workload-common.ts";

/** deletePod: steps wait-for-release, delete. */
export function deletePod(deps: WorkloadVerbDeps): Verb<typeof DeletePodRequestSchema, typeof DeletePodResponseSchema> {
  return {
    kind: "delete-pod",
    method: `${WORKLOAD_SERVICE}/DeletePod`,
    request: DeletePodRequestSchema,
    response: DeletePodResponseSchema,
    stoppable: false,
    async prepare(req) {
      checkName(req.name, "name");
      const grace = req.gracePeriodSeconds === undefined ? undefined : Number(req.gracePeriodSeconds);
      if (grace !== undefined && (grace < 0 || grace > 3600))
        throw new PaasError("invalid_argument", "grace_period_seconds must be between 0 and 3600");
      await requireManaged(deps, req.namespace);
      await deps.workloads.getPod(req.namespace, req.name);
      return {
        namespace: req.namespace,
        release: "",
        repairFirst: false,
        params: {
          name: req.name,
          dry_run: req.dryRun,
          ...(grace !== undefined ? { grace_period_seconds: grace } : {}),
        },
        async perform(run) {
          await run.step(
            "delete",
            () => deps.workloads.deletePod(req.namespace, req.name, grace, req.dryRun),
            () => (req.dryRun ? "dry run" : ""),
          );
          return create(DeletePodResponseSchema, {
            message: `Pod ${req.name} ${req.dryRun ? "would be deleted" : "deleted"}`,
            dryRun: req.dryRun,
          });
        },
      };
    },
  };
}
