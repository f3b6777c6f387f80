import { isLabelValue } from "../domain/names.ts";
import type { ChartSource } from "../domain/release.ts";

// Helm stores --labels on its storage Secret, so they must be valid Kubernetes label values:
// at most 63 alphanumeric characters (plus -_.). A chart reference such as
// oci://host:5000/charts/podinfo is not, so it is stored hex-encoded in 62-character chunks.
const CHUNK = 62;
const REF = "paas-chart-ref";
const REPO = "paas-chart-repo";
const MAX_CHUNKS = 20;

// What was resolved and installed: the exact chart version (SemVer's "+" becomes "_", as in
// OCI tags; a version that still is no label value is not recorded) and, for OCI charts, the
// manifest digest "sha256:<64 hex>", which is 71 characters with a ":" and so is split into
// its two 32-digit halves under keys that name the algorithm. These labels are written on
// every install and upgrade, empty when there is nothing to record: Helm merges an
// upgrade's labels into the previous revision's, so a stale digest must be overwritten.
// A rollback copies the target revision's labels (Helm does), digest included.
const VERSION = "paas-chart-version";
const SHA256 = ["paas-chart-sha256-0", "paas-chart-sha256-1"] as const;
const DIGEST = /^sha256:([0-9a-f]{32})([0-9a-f]{32})$/;

/** ResolvedChart is what a chart reference resolved to when it was pulled for an install or upgrade. */
export interface ResolvedChart {
  /** The exact chart version (from the archive's Chart.yaml). */
  version: string;
  /** The OCI manifest digest ("sha256:…"); absent for charts from HTTP repositories. */
  digest?: string;
}

/** chartLabels encodes where a release's chart came from as Helm release labels. */
export function chartLabels(source: ChartSource): Record<string, string> {
  return { ...encode(REF, source.ref), ...encode(REPO, source.repoUrl ?? "") };
}

/** chartSourceFromLabels decodes chartLabels; undefined when the release carries none. */
export function chartSourceFromLabels(labels: Record<string, string>): ChartSource | undefined {
  const ref = decode(REF, labels);
  if (!ref) return undefined;
  const repoUrl = decode(REPO, labels);
  return repoUrl ? { ref, repoUrl } : { ref };
}

/**
 * resolvedChartLabels records the resolved version and digest. A digest that is not
 * "sha256:" and 64 lowercase hex digits is not recorded (both halves are empty).
 */
export function resolvedChartLabels(resolved: ResolvedChart): Record<string, string> {
  const version = resolved.version.replaceAll("+", "_");
  const m = DIGEST.exec(resolved.digest ?? "");
  return {
    [VERSION]: isLabelValue(version) ? version : "",
    [SHA256[0]]: m?.[1] ?? "",
    [SHA256[1]]: m?.[2] ?? "",
  };
}

/** digestFromLabels is the recorded digest, "sha256:<64 hex>", or undefined. */
export function digestFromLabels(labels: Record<string, string>): string | undefined {
  const digest = `sha256:${labels[SHA256[0]] ?? ""}${labels[SHA256[1]] ?? ""}`;
  return DIGEST.test(digest) ? digest : undefined;
}

function encode(key: string, value: string): Record<string, string> {
  const hex = Buffer.from(value, "utf8").toString("hex");
  const out: Record<string, string> = {};
  const chunks = Math.ceil(hex.length / CHUNK);
  if (chunks > MAX_CHUNKS) throw new Error(`${key} is too long to record`);
  for (let i = 0; i < chunks; i++) out[`${key}-${i}`] = hex.slice(i * CHUNK, (i + 1) * CHUNK);
  // An empty chunk ends the value: an upgrade that records a shorter reference overwrites
  // the next label, and decode stops there (Helm merges upgrade labels into earlier ones).
  out[`${key}-${chunks}`] = "";
  return out;
}

function decode(key: string, labels: Record<string, string>): string {
  let hex = "";
  for (let i = 0; i < MAX_CHUNKS; i++) {
    const part = labels[`${key}-${i}`];
    if (!part) break;
    hex += part;
  }
  return /^([0-9a-f]{2})*$/.test(hex) ? Buffer.from(hex, "hex").toString("utf8") : "";
}
