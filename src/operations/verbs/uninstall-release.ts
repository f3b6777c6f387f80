import { create } from "@bufbuild/protobuf";
import { UninstallReleaseRequestSchema, UninstallReleaseResponseSchema } from "../../../gen/paas/v1/release_pb.js";
import type { Verb } from "../verb.ts";
import { RELEASE_SERVICE, type VerbDeps } from "./verb-deps.ts";

/** uninstallRelease: steps wait-for-release, repair (when it ran), apply, record. Not stoppable once helm runs. */
export function uninstallRelease(
  deps: VerbDeps,
): Verb<typeof UninstallReleaseRequestSchema, typeof UninstallReleaseResponseSchema> {
  return {
    kind: "uninstall",
    method: `${RELEASE_SERVICE}/UninstallRelease`,
    request: UninstallReleaseRequestSchema,
    response: UninstallReleaseResponseSchema,
    // As for rollback: helm uninstall does not catch SIGTERM; only a lost Lease stops it.
    stoppable: false,
    prepare(req) {
      return {
        namespace: req.namespace,
        release: req.name,
        params: { namespace: req.namespace, name: req.name },
        async perform(run) {
          await deps.helm.uninstall({
            namespace: req.namespace,
            name: req.name,
            timeoutSeconds: deps.helmTimeoutSeconds,
            signal: run.signal,
            steps: run.steps,
          });
          return create(UninstallReleaseResponseSchema, {
            message: `Release ${req.name} uninstalled from namespace ${req.namespace}`,
          });
        },
      };
    },
  };
}
