import { create } from "@bufbuild/protobuf";
import { RecoverReleaseRequestSchema, RecoverReleaseResponseSchema } from "../../../gen/paas/v1/release_pb.js";
import { chartSourceFromLabels } from "../../helm/chart-labels.ts";
import { toRelease } from "../../mapping/release-mapping.ts";
import type { Verb } from "../verb.ts";
import { RELEASE_SERVICE, stored, type VerbDeps } from "./verb-deps.ts";

/**
 * recoverRelease: steps wait-for-release (never waits: a live Lease means a live operation,
 * which is left alone), repair, record.
 */
export function recoverRelease(
  deps: VerbDeps,
): Verb<typeof RecoverReleaseRequestSchema, typeof RecoverReleaseResponseSchema> {
  return {
    kind: "recover",
    method: `${RELEASE_SERVICE}/RecoverRelease`,
    request: RecoverReleaseRequestSchema,
    response: RecoverReleaseResponseSchema,
    stoppable: false,
    prepare(req) {
      return {
        namespace: req.namespace,
        release: req.name,
        params: { namespace: req.namespace, name: req.name },
        waitMs: 0,
        repairFirst: false,
        outcomeOf: (res) => (res.recovered ? "recovered" : "succeeded"),
        async perform(run) {
          await stored(deps.kube, req.namespace, req.name);
          const fixed = await run.step(
            "repair",
            () => deps.repair.repairHeld(req.namespace, req.name, run.id, run.call),
            (f) => (f ? `revision ${f.revision} was ${f.status}; marked failed` : "nothing pending"),
          );
          const now = await stored(deps.kube, req.namespace, req.name);
          return create(RecoverReleaseResponseSchema, {
            release: toRelease(now.release, chartSourceFromLabels(now.labels), { labels: now.labels }),
            recovered: fixed !== undefined,
            message: fixed
              ? `Release ${req.name}: revision ${fixed.revision} was ${fixed.status} with no live operation; marked failed`
              : `Release ${req.name} is ${now.release.status}; nothing to recover`,
          });
        },
      };
    },
  };
}
