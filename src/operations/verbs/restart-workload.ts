import { create } from "@bufbuild/protobuf";
import { RestartWorkloadRequestSchema, RestartWorkloadResponseSchema } from "../../../gen/paas/v1/workload_pb.js";
import { PaasError } from "../../errors.ts";
import type { Verb } from "../verb.ts";
import {
  checkName,
  pollUntil,
  requireManaged,
  scalableKindOf,
  toWorkload,
  WORKLOAD_SERVICE,
  type WorkloadVerbDeps,
} from "./workload-common.ts";

/** restartWorkload: steps wait-for-release, restart (kubectl.kubernetes.io/restartedAt), wait-ready (with wait). */
export function restartWorkload(
  deps: WorkloadVerbDeps,
): Verb<typeof RestartWorkloadRequestSchema, typeof RestartWorkloadResponseSchema> {
  return {
    kind: "restart-workload",
    method: `${WORKLOAD_SERVICE}/RestartWorkload`,
    request: RestartWorkloadRequestSchema,
    response: RestartWorkloadResponseSchema,
    stoppable: true,
    async prepare(req) {
      const kind = scalableKindOf(req.kind, req.resource);
      checkName(req.name, "name");
      await requireManaged(deps, req.namespace);
      const found = await deps.workloads.get(req.namespace, kind, req.name);
      if (found.paused)
        throw new PaasError(
          "failed_precondition",
          `Deployment ${req.namespace}/${req.name} is paused: a restart would not roll out; resume it first`,
        );
      return {
        namespace: req.namespace,
        release: "",
        repairFirst: false,
        params: { kind, name: req.name, wait: req.wait, dry_run: req.dryRun },
        async perform(run) {
          const ns = req.namespace;
          const at = new Date().toISOString();
          await run.step(
            "restart",
            () => deps.workloads.restart(ns, kind, req.name, at, req.dryRun),
            () => `kubectl.kubernetes.io/restartedAt=${at}${req.dryRun ? " (dry run)" : ""}`,
          );
          let after = await deps.workloads.get(ns, kind, req.name);
          if (req.wait && !req.dryRun) {
            after = await run.step(
              "wait-ready",
              () =>
                pollUntil(deps, run, `waiting for the restarted ${kind} ${req.name}`, async () => {
                  const w = await deps.workloads.get(ns, kind, req.name);
                  run.progress({
                    podsReady: w.ready,
                    podsDesired: w.desired,
                    workloads: [{ kind, name: req.name, ready: w.ready, desired: w.desired }],
                  });
                  return w.observed && w.updated === w.desired && w.ready === w.desired && w.current === w.desired
                    ? w
                    : undefined;
                }),
              (w) => `${w.ready}/${w.desired} ready`,
            );
          }
          return create(RestartWorkloadResponseSchema, {
            workload: toWorkload(after),
            restartedAt: at,
            message: `${kind} ${req.name} ${req.dryRun ? "would be restarted" : "restarted"}`,
            dryRun: req.dryRun,
          });
        },
      };
    },
  };
}
