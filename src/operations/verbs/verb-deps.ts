import type { Duration } from "@bufbuild/protobuf/wkt";
import type { ChartCatalog } from "../../catalog/catalog.ts";
import type { ChartSource, JsonObject } from "../../domain/release.ts";
import { validateValues, type ValuesLimits } from "../../domain/validation.ts";
import { valuesDigest } from "../../audit/fingerprint.ts";
import { PaasError } from "../../errors.ts";
import { chartSourceFromLabels } from "../../helm/chart-labels.ts";
import type { HelmClient } from "../../helm/helm-client.ts";
import type { KubeClient, StoredRelease } from "../../kube/kube-types.ts";
import type { NamespaceManager } from "../namespace-manager.ts";
import type { ReleaseRecovery } from "../../domain/ports.ts";
import type { ReleaseRepair } from "../release-repair.ts";

/** VerbDeps is what every verb shares (Helm's action.Configuration, in spirit). */
export interface VerbDeps {
  helm: HelmClient;
  kube: KubeClient;
  namespaces: NamespaceManager;
  /** The chart sources callers may use (src/catalog/). */
  catalog: ChartCatalog;
  /** Stamps the caller and operation on a rollback's revision. */
  recovery: Pick<ReleaseRecovery, "stampRevision">;
  repair: ReleaseRepair;
  /** Limits on values; DEFAULT_VALUES_LIMITS when absent. */
  valuesLimits?: ValuesLimits;
  helmTimeoutSeconds: number;
  maxHelmTimeoutSeconds: number;
}

export const RELEASE_SERVICE = "paas.v1.ReleaseService";
export const NAMESPACE_SERVICE = "paas.v1.NamespaceService";

/** stored reads the newest revision from Helm's storage; NOT_FOUND when there is none. */
export async function stored(kube: KubeClient, namespace: string, name: string): Promise<StoredRelease> {
  const found = await kube.getStoredRelease(namespace, name);
  if (!found) throw new PaasError("not_found", `Release ${name} not found in namespace ${namespace}`);
  return found;
}

/** checkedValues validates a request's values against the limits. */
export function checkedValues(deps: VerbDeps, values: JsonObject | undefined): JsonObject {
  validateValues(values, deps.valuesLimits);
  return values ?? {};
}

/** helmTimeout turns a request's Duration into whole seconds within the server's bounds. */
export function helmTimeout(d: Duration | undefined, fallback: number, max: number): number {
  if (d === undefined) return fallback;
  const seconds = Number(d.seconds) + d.nanos / 1e9;
  if (!(seconds >= 1)) throw new PaasError("invalid_argument", "timeout must be at least 1s");
  if (seconds > max) throw new PaasError("invalid_argument", `timeout must be at most ${max}s`);
  return Math.ceil(seconds);
}

/** referenceOf is the chart reference as the audit log records it. */
export function referenceOf(source: ChartSource): string {
  return source.repoUrl ? `${source.repoUrl.replace(/\/+$/, "")}/${source.ref}` : source.ref;
}

/** recordedSource is the chart recorded at install; without a new version the deployed one is kept. */
export function recordedSource(current: StoredRelease, version: string): ChartSource {
  const recorded = chartSourceFromLabels(current.labels);
  if (!recorded) {
    throw new PaasError(
      "failed_precondition",
      `Release ${current.release.name} has no recorded chart reference; pass chart`,
    );
  }
  // Reusing the recorded chart must not silently move to a newer chart version: pin the
  // deployed version unless the caller asks for another.
  return { ...recorded, version: version || current.release.chartVersion };
}

export function withoutVersion(source: ChartSource): ChartSource {
  return source.repoUrl ? { ref: source.ref, repoUrl: source.repoUrl } : { ref: source.ref };
}

/** chartParams are the ops-API job parameters of a chart write: the values only as their SHA-256. */
export function chartParams(
  chart: string,
  version: string,
  values: JsonObject | undefined,
  wait: boolean,
): Record<string, string | number | boolean> {
  return { chart, version, values_sha256: valuesDigest(values), wait };
}
