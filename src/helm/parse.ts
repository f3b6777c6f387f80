import { PaasError } from "../errors.ts";
import { asObject, date, int, parseJsonOutput, status, str } from "./parse-json.ts";
import type { ReleaseInfo } from "../domain/release.ts";

/** ChartMetadata is what `helm get metadata -o json` adds to a status: the chart's identity. */
export interface ChartMetadata {
  name: string;
  namespace: string;
  revision: number;
  /** Chart name, e.g. "podinfo". */
  chart: string;
  chartVersion: string;
  appVersion: string;
}

/**
 * parseRelease reads a release document as printed by `helm install|upgrade|status -o json`
 * (v3's release.Release and v4's release/v1.Release share these fields). `status` strips
 * the chart, so chart fields are empty then and come from parseMetadata instead.
 */
export function parseRelease(stdout: string): ReleaseInfo {
  const doc = asObject(parseJsonOutput(stdout));
  const name = str(doc, "name");
  if (name === "") throw malformed("release without a name");
  const info = asObject(doc.info);
  const meta = asObject(asObject(doc.chart).metadata);
  return {
    name,
    namespace: str(doc, "namespace"),
    revision: int(doc, "version"),
    status: status(info.status),
    chart: str(meta, "name"),
    chartVersion: str(meta, "version"),
    appVersion: str(meta, "appVersion"),
    updated: date(info.last_deployed),
    description: str(info, "description"),
    // `config` holds only the user-supplied values and is omitted when there are none.
    values: asObject(doc.config),
    notes: str(info, "notes"),
  };
}

/** parseMetadata reads `helm get metadata -o json` (same fields in v3.22 and v4). */
export function parseMetadata(stdout: string): ChartMetadata {
  const doc = asObject(parseJsonOutput(stdout));
  const name = str(doc, "name");
  if (name === "") throw malformed("metadata without a release name");
  return {
    name,
    namespace: str(doc, "namespace"),
    revision: int(doc, "revision"),
    chart: str(doc, "chart"),
    chartVersion: str(doc, "version"),
    appVersion: str(doc, "appVersion"),
  };
}

/** withMetadata completes a release read by `helm status` with its chart identity. */
export function withMetadata(release: ReleaseInfo, meta: ChartMetadata): ReleaseInfo {
  return { ...release, chart: meta.chart, chartVersion: meta.chartVersion, appVersion: meta.appVersion };
}

/** HelmVersion is the parsed output of `helm version --template {{.Version}}`. */
export interface HelmVersion {
  /** As helm prints it, e.g. "v4.3.1". */
  version: string;
  major: 3 | 4;
}

/** parseVersion reads "v4.3.1" (or "v3.22.0+gabc" from --short) and rejects majors other than 3 and 4. */
export function parseVersion(stdout: string): HelmVersion {
  const version = stdout.trim().split(/\s+/)[0] ?? "";
  const m = /^v?(\d+)\.\d+\.\d+/.exec(version);
  const major = m ? Number(m[1]) : Number.NaN;
  if (major !== 3 && major !== 4) {
    throw new PaasError("failed_precondition", "unsupported helm version (need helm 3 or 4)", {
      cause: new Error(`helm version printed ${JSON.stringify(version.slice(0, 40))}`),
    });
  }
  return { version: version.split("+")[0] ?? version, major };
}

function malformed(what: string): PaasError {
  return new PaasError("internal", "helm printed unexpected output", { cause: new Error(what) });
}
