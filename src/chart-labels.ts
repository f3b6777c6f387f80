import type { ChartSource } from "./helm/types.ts";

// Helm stores --labels on its storage Secret, so they must be valid Kubernetes label values:
// at most 63 alphanumeric characters (plus -_.). A chart reference such as
// oci://host:5000/charts/podinfo is not, so it is stored hex-encoded in 62-character chunks.
const CHUNK = 62;
const REF = "paas-chart-ref";
const REPO = "paas-chart-repo";
const MAX_CHUNKS = 20;

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
