import { PaasError } from "../errors.ts";
import { assertArg } from "./assert-arg.ts";
import type { ChartSource } from "../domain/release.ts";

/** ChartArgOptions say how OCI registries are reached. */
export interface ChartArgOptions {
  /** Pass --plain-http for every oci:// chart (a registry without TLS). */
  plainHttp: boolean;
  /** Registries ("host:port" or "host") that get --plain-http; loopback ones always do. */
  plainHttpRegistries?: readonly string[];
}

// A "repo/chart" reference: one configured repository name and one chart name.
const REPO_CHART = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;
// A bare chart name, only meaningful together with --repo.
const CHART_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * chartArgs turns a ChartSource into helm's CHART positional argument followed by the
 * flags that locate it (--version, --repo, --plain-http). Only the three documented
 * forms are accepted: anything else (a local path, a file:// or https:// URL) would let
 * a caller make helm read from the operator's own filesystem or arbitrary hosts.
 */
export function chartArgs(source: ChartSource, options: ChartArgOptions): string[] {
  const ref = assertArg("chart reference", source.ref.trim());
  const flags: string[] = [];
  if (source.version !== undefined && source.version !== "") {
    flags.push("--version", assertArg("chart version", source.version.trim()));
  }
  if (ref.startsWith("oci://")) {
    if (source.repoUrl) throw new PaasError("invalid_argument", "an oci:// chart reference takes no repository URL");
    if (!isOciRef(ref))
      throw new PaasError("invalid_argument", `chart reference ${ref} is not a valid oci:// reference`);
    if (options.plainHttp || isLoopbackOci(ref) || isListed(ref, options.plainHttpRegistries ?? []))
      flags.push("--plain-http");
    return [ref, ...flags];
  }
  if (source.repoUrl) {
    if (!CHART_NAME.test(ref))
      throw new PaasError("invalid_argument", "with a repository URL the chart reference must be a bare chart name");
    flags.push("--repo", assertRepoUrl(source.repoUrl.trim()));
    return [ref, ...flags];
  }
  if (!REPO_CHART.test(ref)) {
    throw new PaasError(
      "invalid_argument",
      "chart reference must be oci://…, repo/chart, or a chart name with a repository URL",
    );
  }
  return [ref, ...flags];
}

/** chartLabel names a chart source in messages and logs, e.g. "podinfo 6.13.0". */
export function chartLabel(source: ChartSource): string {
  return source.version ? `${source.ref} ${source.version}` : source.ref;
}

/** isLoopbackOci tells whether an oci:// reference points at this machine (a dev or test registry). */
export function isLoopbackOci(ref: string): boolean {
  const host = ociHost(ref);
  if (host === undefined) return false;
  return host === "localhost" || /^127(\.\d{1,3}){3}$/.test(host) || host === "[::1]";
}

// oci://host[:port]/path[:tag] with a parsable host; the path must name a chart.
function isOciRef(ref: string): boolean {
  const rest = ref.slice("oci://".length);
  const slash = rest.indexOf("/");
  return slash > 0 && slash < rest.length - 1 && ociHost(ref) !== undefined && !/\s/.test(rest);
}

function ociHost(ref: string): string | undefined {
  return ociUrl(ref)?.hostname.toLowerCase();
}

// A configured entry names a registry with its port ("r.local:5000") or without ("r.local").
function isListed(ref: string, registries: readonly string[]): boolean {
  const url = ociUrl(ref);
  if (!url) return false;
  const host = url.host.toLowerCase();
  const hostname = url.hostname.toLowerCase();
  return registries.some((r) => {
    const entry = r.trim().toLowerCase();
    return entry !== "" && (entry === host || entry === hostname);
  });
}

function ociUrl(ref: string): URL | undefined {
  try {
    // URL parsing handles [::1]:5000 and host:port alike.
    const url = new URL(`http://${ref.slice("oci://".length)}`);
    // Credentials on a command line are readable by every local user (/proc).
    if (url.username || url.password) return undefined;
    return url;
  } catch {
    return undefined;
  }
}

function assertRepoUrl(raw: string): string {
  assertArg("repository URL", raw);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new PaasError("invalid_argument", "repository URL is not a valid URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new PaasError("invalid_argument", "repository URL must use http or https");
  }
  // Credentials on a command line are readable by every local user (/proc) and end up in logs.
  if (url.username || url.password)
    throw new PaasError("invalid_argument", "repository URL must not contain credentials");
  return raw;
}
