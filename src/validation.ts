import { PaasError } from "./errors.ts";
import type { ChartSource } from "./helm/types.ts";

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// Helm's own release-name rule (pkg/chartutil / pkg/release/util): DNS-1123 subdomain, at most 53 characters.
const RELEASE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const CHART_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
// Exact versions and semver constraints (">=1.2 <2", "~1.2", "^1", "1.x"); never a leading '-'.
const CHART_VERSION = /^[0-9A-Za-z~^<>=*][0-9A-Za-z.+~^<>=*|, _-]{0,63}$/;

/** validateNamespace accepts a DNS-1123 label that starts with the prefix and is longer than it. */
export function validateNamespace(name: string, prefix: string, field = "namespace"): void {
  checkName(name, field, 63, DNS1123_LABEL, "a DNS-1123 label (lowercase letters, digits and '-')");
  if (!name.startsWith(prefix) || name.length === prefix.length) {
    throw new PaasError("permission_denied", `${field} "${name}" is outside the managed prefix "${prefix}"`);
  }
}

/** validateReleaseName applies Helm's release-name rule. */
export function validateReleaseName(name: string, field = "name"): void {
  checkName(name, field, 53, RELEASE_NAME, "a valid Helm release name (lowercase letters, digits, '-' and '.')");
}

function checkName(name: string, field: string, max: number, pattern: RegExp, what: string): void {
  if (name === "") throw new PaasError("invalid_argument", `${field} is required`);
  if (name.length > max) throw new PaasError("invalid_argument", `${field} must be at most ${max} characters`);
  // "--" is legal in DNS labels but reads like a flag and is never needed; refuse it outright.
  if (!pattern.test(name) || name.includes("--")) {
    throw new PaasError("invalid_argument", `${field} "${printable(name)}" is not ${what}`);
  }
}

/**
 * validateChartSource checks a chart reference without touching the network or the file
 * system: oci://host/path/chart, repo/chart for a configured repository, or a chart name
 * with an http(s) repository URL. Local paths and file:// are refused.
 */
export function validateChartSource(
  ref: string,
  version: string,
  repoUrl: string,
  repositories: Record<string, string>,
): ChartSource {
  if (ref === "") throw new PaasError("invalid_argument", "chart is required");
  if (ref.length > 512) throw new PaasError("invalid_argument", "chart must be at most 512 characters");
  if (version !== "" && !CHART_VERSION.test(version)) {
    throw new PaasError("invalid_argument", `version "${printable(version)}" is not a chart version or range`);
  }
  const source: ChartSource = { ref, ...(version ? { version } : {}) };
  if (/^[a-z][a-z0-9+.-]*:/i.test(ref)) {
    if (!ref.toLowerCase().startsWith("oci://")) {
      throw new PaasError("invalid_argument", "chart must be an oci:// reference, repo/chart, or a chart name with repo_url; other schemes such as file:// are refused");
    }
    if (repoUrl) throw new PaasError("invalid_argument", "repo_url cannot be combined with an oci:// chart");
    checkUrl(ref, "chart", ["oci:"]);
    return source;
  }
  if (ref.startsWith("/") || ref.startsWith(".") || ref.startsWith("~") || ref.includes("\\") || ref.includes("..")) {
    throw new PaasError("invalid_argument", "local chart paths are refused: name an oci:// reference, repo/chart, or a chart with repo_url");
  }
  const parts = ref.split("/");
  if (parts.length === 2) {
    const [repo, chart] = parts as [string, string];
    if (repoUrl) throw new PaasError("invalid_argument", "repo_url cannot be combined with repo/chart");
    const url = repositories[repo];
    if (url === undefined) throw new PaasError("invalid_argument", `chart repository "${printable(repo)}" is not configured on the server`);
    if (!CHART_NAME.test(chart)) throw new PaasError("invalid_argument", `chart name "${printable(chart)}" is not valid`);
    return { ...source, ref: chart, repoUrl: url };
  }
  if (parts.length > 2 || !CHART_NAME.test(ref)) {
    throw new PaasError("invalid_argument", `chart "${printable(ref)}" is not an oci:// reference, repo/chart, or a chart name`);
  }
  if (!repoUrl) throw new PaasError("invalid_argument", `chart "${ref}" needs repo_url, an oci:// reference, or the repo/chart form`);
  checkUrl(repoUrl, "repo_url", ["http:", "https:"]);
  return { ...source, repoUrl };
}

function checkUrl(raw: string, field: string, protocols: string[]): void {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new PaasError("invalid_argument", `${field} is not a valid URL`);
  }
  if (!protocols.includes(url.protocol)) throw new PaasError("invalid_argument", `${field} must use ${protocols.join(" or ")}`);
  if (url.username || url.password) throw new PaasError("invalid_argument", `${field} must not carry credentials`);
  if (url.search || url.hash) throw new PaasError("invalid_argument", `${field} must not have a query or fragment`);
  if (!url.hostname) throw new PaasError("invalid_argument", `${field} must name a host`);
  if (raw.length > 512 || /[\s\x00-\x1f]/.test(raw)) throw new PaasError("invalid_argument", `${field} is not a valid URL`);
  // The URL parser resolves dot segments away, so look at the text as given.
  if (raw.split(/[/?#]/).some((seg) => seg === ".." || seg === ".")) throw new PaasError("invalid_argument", `${field} must not contain '..'`);
}

// Kubernetes quantity syntax (k8s.io/apimachinery resource.Quantity): a signed decimal number
// with an optional binary (Ki…Ei), decimal (n u m k M G T P E) or exponent suffix.
const QUANTITY = /^[+]?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;

/** validateQuantity accepts a positive Kubernetes quantity such as "500m", "2", "4Gi". */
export function validateQuantity(value: string, field: string): void {
  if (value.length > 32 || !QUANTITY.test(value) || Number.parseFloat(value.replace(/^\+/, "")) <= 0) {
    throw new PaasError("invalid_argument", `${field} "${printable(value)}" is not a positive Kubernetes quantity (e.g. 500m, 2, 4Gi)`);
  }
}

/** printable shortens a caller's string and escapes what could break a log line or a message. */
export function printable(s: string): string {
  const short = s.length > 80 ? `${s.slice(0, 80)}…` : s;
  return JSON.stringify(short).slice(1, -1);
}
