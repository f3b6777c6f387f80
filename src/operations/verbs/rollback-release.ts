import { create } from "@bufbuild/protobuf";
import { RollbackReleaseRequestSchema, RollbackReleaseResponseSchema } from "../../../gen/paas/v1/release_pb.js";
import { PaasError } from "../../errors.ts";
import { chartSourceFromLabels } from "../../helm/chart-labels.ts";
import { toRelease } from "../../mapping/release-mapping.ts";
import type { Verb } from "../verb.ts";
import { RELEASE_SERVICE, stored, type VerbDeps } from "./verb-deps.ts";

/** rollbackRelease: steps wait-for-release, repair (when it ran), apply, record. Not stoppable once helm runs. */
export function rollbackRelease(
  deps: VerbDeps,
): Verb<typeof RollbackReleaseRequestSchema, typeof RollbackReleaseResponseSchema> {
  return {
    kind: "rollback",
    method: `${RELEASE_SERVICE}/RollbackRelease`,
    request: RollbackReleaseRequestSchema,
    response: RollbackReleaseResponseSchema,
    // helm rollback dies on SIGTERM and would leave the release pending-rollback. Only a lost
    // Lease stops it (the API is gone then anyway).
    stoppable: false,
    prepare(req) {
      if (req.revision < 0)
        throw new PaasError("invalid_argument", "revision must be 0 (previous) or a positive revision");
      return {
        namespace: req.namespace,
        release: req.name,
        params: { namespace: req.namespace, name: req.name, revision: req.revision },
        versionOf: (res) => res.release?.chartVersion ?? "",
        async perform(run) {
          await stored(deps.kube, req.namespace, req.name);
          await deps.helm.rollback({
            namespace: req.namespace,
            name: req.name,
            revision: req.revision,
            wait: false,
            timeoutSeconds: deps.helmTimeoutSeconds,
            signal: run.signal,
            steps: run.steps,
          });
          const now = await stored(deps.kube, req.namespace, req.name);
          // helm copied the labels of the revision it returned to: record who made this one.
          await deps.recovery.stampRevision(req.namespace, req.name, now.release.revision, run.labels);
          const labels = { ...now.labels, ...run.labels };
          const target = req.revision === 0 ? "the previous revision" : `revision ${req.revision}`;
          return create(RollbackReleaseResponseSchema, {
            release: toRelease(now.release, chartSourceFromLabels(labels), { labels }),
            message: `Release ${req.name} rolled back to ${target} (now revision ${now.release.revision})`,
          });
        },
      };
    },
  };
}
