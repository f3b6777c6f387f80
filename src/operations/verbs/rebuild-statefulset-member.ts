import { create } from "@bufbuild/protobuf";
import {
  RebuildStatefulSetMemberRequestSchema,
  RebuildStatefulSetMemberResponseSchema,
} from "../../../gen/paas/v1/workload_pb.js";
import { PaasError } from "../../errors.ts";
import type { Verb } from "../verb.ts";
import {
  checkName,
  pollUntil,
  requireManaged,
  toWorkload,
  waitReady,
  WORKLOAD_SERVICE,
  type WorkloadVerbDeps,
} from "./workload-common.ts";

const KIND = "StatefulSet" as const;

/**
 * rebuildStatefulSetMember is the replica-rebuild runbook: steps scale-to-zero, wait-pods-gone,
 * delete-pvcs (every claim of the ordinal from volumeClaimTemplates), wait-pvcs-gone, scale-up,
 * wait-ready. Each step checks again that nobody scaled the StatefulSet meanwhile; a claim is
 * deleted only once no pod of the set exists, so the pvc-protection finalizer clears at once and
 * no recreated pod binds the old claim. Every step tolerates the state a previous, failed run
 * left (already at zero, claims already gone), so a rerun is safe.
 */
export function rebuildStatefulSetMember(
  deps: WorkloadVerbDeps,
): Verb<typeof RebuildStatefulSetMemberRequestSchema, typeof RebuildStatefulSetMemberResponseSchema> {
  return {
    kind: "rebuild-statefulset-member",
    method: `${WORKLOAD_SERVICE}/RebuildStatefulSetMember`,
    request: RebuildStatefulSetMemberRequestSchema,
    response: RebuildStatefulSetMemberResponseSchema,
    stoppable: true,
    async prepare(req) {
      checkName(req.statefulset, "statefulset");
      if (req.ordinal < 0) throw new PaasError("invalid_argument", "ordinal must not be negative");
      if (req.targetReplicas < 0) throw new PaasError("invalid_argument", "target_replicas must not be negative");
      if (req.targetReplicas > deps.maxReplicas)
        throw new PaasError("invalid_argument", `target_replicas must be at most ${deps.maxReplicas}`);
      await requireManaged(deps, req.namespace);
      const sts = await deps.workloads.get(req.namespace, KIND, req.statefulset);
      const target = req.targetReplicas || sts.desired;
      if (target === 0)
        throw new PaasError(
          "invalid_argument",
          `StatefulSet ${req.statefulset} is at 0 replicas: pass target_replicas`,
        );
      if (req.ordinal >= target)
        throw new PaasError("invalid_argument", `ordinal ${req.ordinal} is not below target_replicas ${target}`);
      if (sts.claimTemplates.length === 0)
        throw new PaasError("failed_precondition", `StatefulSet ${req.statefulset} has no volumeClaimTemplates`);
      const claims = sts.claimTemplates.map((t) => `${t}-${req.statefulset}-${req.ordinal}`);
      return {
        namespace: req.namespace,
        release: "",
        repairFirst: false,
        params: {
          statefulset: req.statefulset,
          ordinal: req.ordinal,
          target_replicas: target,
          dry_run: req.dryRun,
          claims: claims.join(","),
        },
        async perform(run) {
          const ns = req.namespace;
          const name = req.statefulset;
          if (req.dryRun) {
            const s = await deps.workloads.readScale(ns, KIND, name);
            await run.step(
              "scale-to-zero",
              () => deps.workloads.writeScale(ns, KIND, name, 0, s.resourceVersion, true),
              () => "dry run",
            );
            return create(RebuildStatefulSetMemberResponseSchema, {
              workload: toWorkload(sts),
              claims,
              message: `would scale ${name} from ${s.replicas} to 0, delete ${claims.join(", ")}, scale to ${target} and wait until ready`,
              dryRun: true,
            });
          }
          const atZero = (step: string) => assertAtZero(deps, ns, name, step);
          const before = await run.step(
            "scale-to-zero",
            async () => {
              const s = await deps.workloads.readScale(ns, KIND, name);
              if (s.replicas !== 0) await deps.workloads.writeScale(ns, KIND, name, 0, s.resourceVersion, false);
              return s.replicas;
            },
            (n) => (n === 0 ? "already at 0" : `${n} → 0`),
          );
          await run.step(
            "wait-pods-gone",
            () =>
              pollUntil(deps, run, "waiting for the pods to be gone", async () => {
                await atZero("wait-pods-gone");
                const pods = await deps.workloads.podsOf(ns, name);
                return pods.length === 0 ? true : undefined;
              }),
            () => "no pod left",
          );
          const deleted = await run.step(
            "delete-pvcs",
            async () => {
              await atZero("delete-pvcs");
              const out: string[] = [];
              for (const claim of claims) {
                const c = await deps.workloads.getClaim(ns, claim);
                if (!c) continue;
                out.push(`${claim} (uid ${c.uid})`);
                if (!c.terminating) await deps.workloads.deleteClaim(ns, claim, false);
              }
              return out;
            },
            (d) => (d.length ? `deleted ${d.join(", ")}` : "already gone"),
          );
          await run.step(
            "wait-pvcs-gone",
            () =>
              pollUntil(deps, run, "waiting for the claims to be gone", async () => {
                await atZero("wait-pvcs-gone");
                for (const claim of claims) if (await deps.workloads.getClaim(ns, claim)) return undefined;
                return true;
              }),
            () => "every claim gone",
          );
          await run.step(
            "scale-up",
            async () => {
              const s = await deps.workloads.readScale(ns, KIND, name);
              if (s.replicas !== 0) throw scaledBack(name, s.replicas, "scale-up");
              await deps.workloads.writeScale(ns, KIND, name, target, s.resourceVersion, false);
            },
            () => `0 → ${target}`,
          );
          const after = await run.step(
            "wait-ready",
            () => waitReady(deps, run, ns, KIND, name, target),
            (w) => `${w.ready}/${target} ready`,
          );
          const fresh = [];
          for (const claim of claims) {
            const c = await deps.workloads.getClaim(ns, claim);
            fresh.push(`${claim} (uid ${c?.uid ?? "none"})`);
          }
          return create(RebuildStatefulSetMemberResponseSchema, {
            workload: toWorkload(after),
            claims,
            message: `StatefulSet ${name} member ${req.ordinal} rebuilt: ${before} → 0 → ${target} replicas; ${deleted.length ? `deleted ${deleted.join(", ")}; ` : ""}now ${fresh.join(", ")}`,
          });
        },
      };
    },
  };
}

function scaledBack(name: string, replicas: number, step: string): PaasError {
  return new PaasError(
    "failed_precondition",
    `StatefulSet ${name} was scaled to ${replicas} by someone else during ${step}; the runbook stopped (rerun it once nobody else scales it)`,
  );
}

async function assertAtZero(deps: WorkloadVerbDeps, ns: string, name: string, step: string): Promise<void> {
  const s = await deps.workloads.readScale(ns, KIND, name);
  if (s.replicas !== 0) throw scaledBack(name, s.replicas, step);
}
