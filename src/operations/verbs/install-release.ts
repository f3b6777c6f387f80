import { create } from "@bufbuild/protobuf";
import { InstallReleaseRequestSchema, InstallReleaseResponseSchema } from "../../../gen/paas/v1/release_pb.js";
import { chartLabels } from "../../helm/chart-labels.ts";
import { toRelease } from "../../mapping/release-mapping.ts";
import type { Verb } from "../verb.ts";
import { followReadiness } from "../wait-ready.ts";
import { chartParams, checkedValues, helmTimeout, referenceOf, RELEASE_SERVICE, type VerbDeps } from "./verb-deps.ts";

/**
 * installRelease: steps wait-for-release, repair (when it ran), namespace (create_namespace,
 * when it was missing), pull, render-guard, apply, wait-ready (with wait), record.
 */
export function installRelease(
  deps: VerbDeps,
): Verb<typeof InstallReleaseRequestSchema, typeof InstallReleaseResponseSchema> {
  return {
    kind: "install",
    method: `${RELEASE_SERVICE}/InstallRelease`,
    request: InstallReleaseRequestSchema,
    response: InstallReleaseResponseSchema,
    stoppable: true,
    prepare(req) {
      const source = deps.catalog.resolve(req.chart, req.version, req.repoUrl);
      const values = checkedValues(deps, req.values);
      const timeoutSeconds = helmTimeout(req.timeout, deps.helmTimeoutSeconds, deps.maxHelmTimeoutSeconds);
      return {
        namespace: req.namespace,
        release: req.name,
        chartReference: referenceOf(source),
        chartVersion: req.version,
        values: req.values,
        params: {
          namespace: req.namespace,
          name: req.name,
          ...chartParams(referenceOf(source), req.version, req.values, req.wait),
          create_namespace: req.createNamespace,
        },
        versionOf: (res) => res.release?.chartVersion ?? "",
        async perform(run) {
          if (req.createNamespace) await deps.namespaces.ensureDefault(req.namespace, run.steps);
          else await deps.namespaces.requireManaged(req.namespace);
          const ready = req.wait ? followReadiness(deps.kube, req.namespace, req.name, run) : undefined;
          try {
            const info = await deps.helm.install({
              namespace: req.namespace,
              name: req.name,
              chart: source,
              values,
              createNamespace: false,
              wait: req.wait,
              timeoutSeconds,
              labels: { ...chartLabels(source), ...run.labels },
              signal: run.signal,
              steps: run.steps,
            });
            await ready?.stop(true);
            return create(InstallReleaseResponseSchema, { release: toRelease(info, source, { labels: run.labels }) });
          } catch (err) {
            await ready?.stop(false);
            throw err;
          }
        },
      };
    },
  };
}
