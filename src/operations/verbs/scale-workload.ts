import { create } from "@bufbuild/protobuf";
import { ScaleWorkloadRequestSchema, ScaleWorkloadResponseSchema } from "../../../gen/paas/v1/workload_pb.js";
import { PaasError } from "../../errors.ts";
import type { Verb } from "../verb.ts";
import {
  checkName,
  checkQuota,
  helmWarning,
  requireManaged,
  scalableKindOf,
  toWorkload,
  waitReady,
  WORKLOAD_SERVICE,
  type WorkloadVerbDeps,
} from "./workload-common.ts";

/** scaleWorkload: steps wait-for-release, read (the expected_replicas precondition), quota, scale, wait-ready (with wait). */
export function scaleWorkload(
  deps: WorkloadVerbDeps,
): Verb<typeof ScaleWorkloadRequestSchema, typeof ScaleWorkloadResponseSchema> {
  return {
    kind: "scale-workload",
    method: `${WORKLOAD_SERVICE}/ScaleWorkload`,
    request: ScaleWorkloadRequestSchema,
    response: ScaleWorkloadResponseSchema,
    stoppable: true,
    async prepare(req) {
      const kind = scalableKindOf(req.kind, req.resource);
      checkName(req.name, "name");
      if (req.replicas < 0) throw new PaasError("invalid_argument", "replicas must not be negative");
      if (req.replicas > deps.maxReplicas)
        throw new PaasError("invalid_argument", `replicas must be at most ${deps.maxReplicas} (WORKLOAD_MAX_REPLICAS)`);
      if (req.expectedReplicas !== undefined && req.expectedReplicas < 0)
        throw new PaasError("invalid_argument", "expected_replicas must not be negative");
      await requireManaged(deps, req.namespace);
      const found = await deps.workloads.get(req.namespace, kind, req.name);
      return {
        namespace: req.namespace,
        release: "",
        repairFirst: false,
        params: {
          kind,
          name: req.name,
          replicas: req.replicas,
          ...(req.expectedReplicas !== undefined ? { expected_replicas: req.expectedReplicas } : {}),
          wait: req.wait,
          dry_run: req.dryRun,
          ...(found.helmRelease ? { helm_release: found.helmRelease } : {}),
        },
        async perform(run) {
          const { ns, name } = { ns: req.namespace, name: req.name };
          const scale = await run.step(
            "read",
            async () => {
              const s = await deps.workloads.readScale(ns, kind, name);
              if (req.expectedReplicas !== undefined && s.replicas !== req.expectedReplicas) {
                throw new PaasError(
                  "failed_precondition",
                  `${kind} ${name} has ${s.replicas} replicas, not the expected ${req.expectedReplicas}; nothing changed`,
                );
              }
              return s;
            },
            (s) => `${s.replicas} replicas`,
          );
          const before = await deps.workloads.get(ns, kind, name);
          await run.step(
            "quota",
            () => checkQuota(deps, before, req.replicas),
            (d) => d,
          );
          const set = await run.step(
            "scale",
            () => deps.workloads.writeScale(ns, kind, name, req.replicas, scale.resourceVersion, req.dryRun),
            (n) => `${scale.replicas} → ${n}${req.dryRun ? " (dry run)" : ""}`,
          );
          let after = await deps.workloads.get(ns, kind, name);
          if (req.wait && !req.dryRun)
            after = await run.step(
              "wait-ready",
              () => waitReady(deps, run, ns, kind, name, set),
              (w) => `${w.ready} ready`,
            );
          const warning = helmWarning(after);
          const verb = req.dryRun ? "would be scaled" : "scaled";
          return create(ScaleWorkloadResponseSchema, {
            workload: req.dryRun ? { ...toWorkload(after), desiredReplicas: set } : toWorkload(after),
            previousReplicas: scale.replicas,
            message: `${kind} ${name} ${verb} from ${scale.replicas} to ${set} replicas`,
            warning,
            dryRun: req.dryRun,
          });
        },
      };
    },
  };
}
