import { create } from "@bufbuild/protobuf";
import { UpgradeReleaseRequestSchema, UpgradeReleaseResponseSchema } from "../../../gen/paas/v1/release_pb.js";
import { PaasError } from "../../errors.ts";
import { chartLabels } from "../../helm/chart-labels.ts";
import { toRelease } from "../../mapping/release-mapping.ts";
import type { Verb } from "../verb.ts";
import { followReadiness } from "../wait-ready.ts";
import {
  chartParams,
  checkedValues,
  helmTimeout,
  recordedSource,
  referenceOf,
  RELEASE_SERVICE,
  stored,
  withoutVersion,
  type VerbDeps,
} from "./verb-deps.ts";

/**
 * upgradeRelease: steps wait-for-release, repair (when it ran), pull, render-guard, apply,
 * wait-ready (with wait), record. Without a chart it reuses the recorded one at the deployed
 * version (unless a version is given).
 */
export function upgradeRelease(
  deps: VerbDeps,
): Verb<typeof UpgradeReleaseRequestSchema, typeof UpgradeReleaseResponseSchema> {
  return {
    kind: "upgrade",
    method: `${RELEASE_SERVICE}/UpgradeRelease`,
    request: UpgradeReleaseRequestSchema,
    response: UpgradeReleaseResponseSchema,
    stoppable: true,
    prepare(req) {
      const given = req.chart ? deps.catalog.resolve(req.chart, req.version, req.repoUrl) : undefined;
      const values = checkedValues(deps, req.values);
      if (req.resetValues && req.reuseValues === true) {
        throw new PaasError("invalid_argument", "reset_values and reuse_values cannot both be true");
      }
      const timeoutSeconds = helmTimeout(req.timeout, deps.helmTimeoutSeconds, deps.maxHelmTimeoutSeconds);
      const reference = given ? referenceOf(given) : "";
      return {
        namespace: req.namespace,
        release: req.name,
        chartReference: reference,
        chartVersion: req.version,
        values: req.values,
        params: {
          namespace: req.namespace,
          name: req.name,
          ...chartParams(reference, req.version, req.values, req.wait),
          reset_values: req.resetValues,
        },
        versionOf: (res) => res.release?.chartVersion ?? "",
        async perform(run) {
          // Helm answers "has no deployed releases" for a release that does not exist at all;
          // look first so that the caller gets NOT_FOUND.
          const found = await stored(deps.kube, req.namespace, req.name);
          const source = given ?? recordedSource(found, req.version);
          // A recorded source is pulled again: it must still be in the catalogue.
          if (!given) deps.catalog.check(source);
          const ready = req.wait ? followReadiness(deps.kube, req.namespace, req.name, run) : undefined;
          try {
            const info = await deps.helm.upgrade({
              namespace: req.namespace,
              name: req.name,
              chart: source,
              values,
              resetValues: req.resetValues,
              reuseValues: req.resetValues ? false : (req.reuseValues ?? true),
              wait: req.wait,
              timeoutSeconds,
              labels: { ...chartLabels(source), ...run.labels },
              signal: run.signal,
              steps: run.steps,
            });
            await ready?.stop(true);
            return create(UpgradeReleaseResponseSchema, {
              release: toRelease(info, withoutVersion(source), { labels: run.labels }),
            });
          } catch (err) {
            await ready?.stop(false);
            throw err;
          }
        },
      };
    },
  };
}
