import { create } from "@bufbuild/protobuf";
import {
  DeletePersistentVolumeClaimRequestSchema,
  DeletePersistentVolumeClaimResponseSchema,
} from "../../../gen/paas/v1/workload_pb.js";
import { PaasError } from "../../errors.ts";
import type { Verb } from "../verb.ts";
import { checkName, pollUntil, requireManaged, WORKLOAD_SERVICE, type WorkloadVerbDeps } from "./workload-common.ts";

export const PVC_PROTECTION = "kubernetes.io/pvc-protection";
/** How long a deletion waits for the claim to go before answering that its finalizer holds it. */
const GONE_WAIT_MS = 5_000;

/** deletePersistentVolumeClaim: steps wait-for-release, check-mounts, delete, wait-gone. */
export function deletePersistentVolumeClaim(
  deps: WorkloadVerbDeps,
): Verb<typeof DeletePersistentVolumeClaimRequestSchema, typeof DeletePersistentVolumeClaimResponseSchema> {
  return {
    kind: "delete-pvc",
    method: `${WORKLOAD_SERVICE}/DeletePersistentVolumeClaim`,
    request: DeletePersistentVolumeClaimRequestSchema,
    response: DeletePersistentVolumeClaimResponseSchema,
    stoppable: false,
    async prepare(req) {
      checkName(req.name, "name");
      await requireManaged(deps, req.namespace);
      if (!(await deps.workloads.getClaim(req.namespace, req.name)))
        throw new PaasError("not_found", `PersistentVolumeClaim ${req.name} not found in namespace ${req.namespace}`);
      return {
        namespace: req.namespace,
        release: "",
        repairFirst: false,
        params: { name: req.name, force: req.force, dry_run: req.dryRun },
        async perform(run) {
          const ns = req.namespace;
          const users = await run.step(
            "check-mounts",
            async () => {
              const pods = await deps.workloads.podsMounting(ns, req.name);
              const active = pods.filter((p) => p.active).map((p) => p.name);
              if (active.length > 0 && !req.force) {
                throw new PaasError(
                  "failed_precondition",
                  `PersistentVolumeClaim ${req.name} is mounted by running pod(s) ${active.join(", ")}; stop them or pass force`,
                );
              }
              return active;
            },
            (a) => (a.length ? `mounted by ${a.join(", ")} (force)` : "not mounted by a running pod"),
          );
          await run.step(
            "delete",
            () => deps.workloads.deleteClaim(ns, req.name, req.dryRun),
            () => (req.dryRun ? "dry run" : ""),
          );
          if (req.dryRun) {
            return create(DeletePersistentVolumeClaimResponseSchema, {
              message: `PersistentVolumeClaim ${req.name} would be deleted`,
              mountedBy: users,
              dryRun: true,
            });
          }
          const left = await run.step(
            "wait-gone",
            () =>
              pollUntil({ ...deps, waitTimeoutMs: Math.min(GONE_WAIT_MS, deps.waitTimeoutMs) }, run, "", async () => {
                const c = await deps.workloads.getClaim(ns, req.name);
                return c === undefined ? { gone: true as const } : undefined;
              }).catch(async (err) => {
                if (!(err instanceof PaasError) || err.kind !== "timeout") throw err;
                return { gone: false as const, claim: await deps.workloads.getClaim(ns, req.name) };
              }),
            (r) => (r.gone ? "gone" : "still Terminating"),
          );
          if (left.gone) {
            return create(DeletePersistentVolumeClaimResponseSchema, {
              message: `PersistentVolumeClaim ${req.name} deleted`,
              deleted: true,
              mountedBy: users,
            });
          }
          const held = left.claim?.finalizers.includes(PVC_PROTECTION) ?? false;
          return create(DeletePersistentVolumeClaimResponseSchema, {
            message: held
              ? `PersistentVolumeClaim ${req.name} is Terminating: held by its ${PVC_PROTECTION} finalizer until no pod uses it${users.length ? ` (${users.join(", ")})` : ""}`
              : `PersistentVolumeClaim ${req.name} is Terminating (finalizers: ${(left.claim?.finalizers ?? []).join(", ") || "none"})`,
            deleted: false,
            heldByFinalizer: held,
            mountedBy: users,
          });
        },
      };
    },
  };
}
