import { PaasError } from "../errors.ts";
import { isDnsLabelPrefix } from "../domain/names.ts";
import type { ChartSource } from "../domain/release.ts";
import { forbiddenHost, formatSourceUrl, parseSourceUrl, type SourceUrl } from "./url.ts";

/**
 * The chart catalogue: the chart sources (HTTP chart repositories and OCI registries) callers
 * may install from. Decisions (README, "Chart catalogue"):
 *
 * - INVALID_ARGUMENT: a reference this API never accepts, whatever the server's configuration —
 *   not one of the three forms, local paths, file:// and other schemes, '..' (also
 *   percent-encoded), credentials, a query or fragment, a non-canonical host, an unknown
 *   `repo/` name (it names no source at all).
 * - PERMISSION_DENIED: a well-formed source this server does not allow — outside the catalogue,
 *   or a link-local / metadata address (refused even without a catalogue).
 *
 * Entries match by parsed URL, not by string: same scheme, same host (case-insensitive), same
 * effective port (default ports normalised: http 80, https and oci 443), and the entry's path
 * is a prefix of the source's path on segment boundaries (`/charts` allows `/charts/x`, not
 * `/charts-x`). Without a catalogue (restricted = false) every well-formed http(s)/oci source
 * is allowed, as before the catalogue existed; main logs a warning at start.
 */

/** CatalogSource is one entry as configured: a URL and, for an HTTP repository, an optional name for `name/chart`. */
export interface CatalogSource {
  url: string;
  name?: string;
}

interface Entry {
  url: SourceUrl;
  text: string;
  name?: string;
}

const CHART_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
// Exact versions and semver constraints (">=1.2 <2", "~1.2", "^1", "1.x"); never a leading '-'.
const CHART_VERSION = /^[0-9A-Za-z~^<>=*][0-9A-Za-z.+~^<>=*|, _-]{0,63}$/;
// An OCI reference's last segment: chart name, optional :tag and/or @digest.
const OCI_LAST = /^([A-Za-z0-9][A-Za-z0-9._-]{0,127})(:[A-Za-z0-9_][A-Za-z0-9._+-]{0,127})?(@sha256:[0-9a-f]{64})?$/;

/** CatalogError is a configuration mistake; its message never contains more than the entry's URL. */
export class CatalogError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CatalogError";
  }
}

/** ChartCatalog resolves and checks chart references; it never touches the network or the file system. */
export class ChartCatalog {
  /** Whether a catalogue was configured; false means every well-formed source is allowed. */
  readonly restricted: boolean;
  private readonly entries: Entry[] = [];
  private readonly names = new Map<string, Entry>();

  /**
   * @param sources the configured catalogue, or undefined when none is configured
   * @param repositories HELM_REPOSITORIES (name → URL): named HTTP repositories, also catalogue entries
   */
  constructor(sources: CatalogSource[] | undefined, repositories: Record<string, string> = {}) {
    this.restricted = sources !== undefined;
    const all: Array<CatalogSource & { origin: string }> = [
      ...(sources ?? []).map((s) => ({ ...s, origin: "chart catalogue" })),
      ...Object.entries(repositories).map(([name, url]) => ({ name, url, origin: "HELM_REPOSITORIES" })),
    ];
    for (const source of all) this.add(source, source.origin);
  }

  /** allowAll is the catalogue of a server without one: only the named repositories, every source allowed. */
  static allowAll(repositories: Record<string, string> = {}): ChartCatalog {
    return new ChartCatalog(undefined, repositories);
  }

  /** sources lists the normalised entries, for the start-up log. */
  get sources(): string[] {
    return this.entries.map((e) => (e.name ? `${e.name}=${e.text}` : e.text));
  }

  private add(source: CatalogSource, origin: string): void {
    let url: SourceUrl;
    try {
      url = parseSourceUrl(
        source.url,
        "URL",
        source.url.toLowerCase().startsWith("oci:") ? ["oci"] : ["http", "https"],
      );
    } catch (err) {
      throw new CatalogError(`${origin}: ${JSON.stringify(source.url.slice(0, 200))}: ${(err as Error).message}`);
    }
    const why = forbiddenHost(url.host);
    if (why) throw new CatalogError(`${origin}: ${source.url} points at ${why}`);
    const entry: Entry = { url, text: formatSourceUrl(url), ...(source.name ? { name: source.name } : {}) };
    if (source.name !== undefined) {
      // Repository names: lowercase letters, digits and '-', alphanumeric first, at most 63 characters.
      if (!isDnsLabelPrefix(source.name))
        throw new CatalogError(
          `${origin}: repository name "${source.name.slice(0, 64)}" must be lowercase letters, digits and '-'`,
        );
      if (url.scheme === "oci")
        throw new CatalogError(
          `${origin}: ${source.url}: only HTTP repositories take a name (oci:// references are used as they are)`,
        );
      const other = this.names.get(source.name);
      if (other && other.text !== entry.text)
        throw new CatalogError(`${origin}: repository name "${source.name}" is configured twice with different URLs`);
      this.names.set(source.name, entry);
    }
    this.entries.push(entry);
  }

  /**
   * resolve validates a request's chart reference and returns what helm is given:
   * `oci://host/path/chart[:tag]`, `repo/chart` (a named repository) or a chart name with
   * `repoUrl` (an HTTP chart repository). INVALID_ARGUMENT or PERMISSION_DENIED otherwise.
   */
  resolve(ref: string, version: string, repoUrl: string): ChartSource {
    if (ref === "") throw invalid("chart is required");
    if (ref.length > 512) throw invalid("chart must be at most 512 characters");
    if (version !== "" && !CHART_VERSION.test(version)) {
      throw invalid(`version "${shown(version)}" is not a chart version or range`);
    }
    const withVersion = (s: ChartSource): ChartSource => (version ? { ...s, version } : s);
    if (/^[a-z][a-z0-9+.-]*:/i.test(ref)) {
      if (!/^oci:/i.test(ref)) {
        throw invalid(
          "chart must be an oci:// reference, repo/chart, or a chart name with repo_url; other schemes such as file:// are refused",
        );
      }
      if (repoUrl) throw invalid("repo_url cannot be combined with an oci:// chart");
      const url = parseSourceUrl(ref, "chart", ["oci"]);
      const last = url.path[url.path.length - 1];
      if (url.trailingSlash || last === undefined || !OCI_LAST.test(last)) {
        throw invalid("an oci:// chart must end with a chart name (oci://registry/path/chart)");
      }
      this.allow(url, "chart");
      return withVersion({ ref: formatSourceUrl(url) });
    }
    if (
      ref.startsWith("/") ||
      ref.startsWith(".") ||
      ref.startsWith("~") ||
      ref.includes("\\") ||
      ref.includes("..") ||
      ref.includes("%")
    ) {
      throw invalid("local chart paths are refused: name an oci:// reference, repo/chart, or a chart with repo_url");
    }
    const parts = ref.split("/");
    if (parts.length === 2) {
      const [repo, chart] = parts as [string, string];
      if (repoUrl) throw invalid("repo_url cannot be combined with repo/chart");
      const entry = this.names.get(repo);
      if (entry === undefined) throw invalid(`chart repository "${shown(repo)}" is not configured on the server`);
      if (!CHART_NAME.test(chart)) throw invalid(`chart name "${shown(chart)}" is not valid`);
      return withVersion({ ref: chart, repoUrl: entry.text });
    }
    if (parts.length > 2 || !CHART_NAME.test(ref)) {
      throw invalid(`chart "${shown(ref)}" is not an oci:// reference, repo/chart, or a chart name`);
    }
    if (!repoUrl) throw invalid(`chart "${ref}" needs repo_url, an oci:// reference, or the repo/chart form`);
    const url = parseSourceUrl(repoUrl, "repo_url", ["http", "https"]);
    this.allow(url, "repo_url");
    return withVersion({ ref, repoUrl: formatSourceUrl(url) });
  }

  /** check re-validates a source recorded on a release (an upgrade that reuses it pulls the chart again). */
  check(source: ChartSource): void {
    this.resolve(source.ref, "", source.repoUrl ?? "");
  }

  /** allow refuses, with PERMISSION_DENIED, a well-formed source this server does not allow. */
  private allow(url: SourceUrl, field: string): void {
    const why = forbiddenHost(url.host);
    if (why) throw denied(`${field} points at ${why}; refused`);
    if (!this.restricted) return;
    if (!this.entries.some((e) => matches(e.url, url))) {
      throw denied(`${field} ${formatSourceUrl(withoutTag(url))} is not in the server's chart catalogue`);
    }
  }
}

/** matches: same scheme, host and effective port; the entry's path is a segment prefix of the source's. */
export function matches(entry: SourceUrl, url: SourceUrl): boolean {
  if (entry.scheme !== url.scheme || entry.host !== url.host || entry.port !== url.port) return false;
  const path = withoutTag(url).path;
  if (entry.path.length > path.length) return false;
  return entry.path.every((seg, i) => path[i] === seg);
}

// oci://r/charts/podinfo:6.13.0 names the chart oci://r/charts/podinfo.
function withoutTag(url: SourceUrl): SourceUrl {
  if (url.scheme !== "oci" || url.path.length === 0) return url;
  const last = url.path[url.path.length - 1]!;
  const name = OCI_LAST.exec(last)?.[1] ?? last;
  return { ...url, path: [...url.path.slice(0, -1), name] };
}

/**
 * parseCatalog reads the catalogue's JSON: `{"sources": [...]}` or a bare array, each entry a
 * URL string or `{"url": "...", "name": "..."}` (name: an HTTP repository callers may name as
 * `name/chart`). Unknown fields are mistakes and refused.
 */
export function parseCatalog(text: string, origin: string): CatalogSource[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new CatalogError(`${origin} is not valid JSON`);
  }
  if (doc !== null && typeof doc === "object" && !Array.isArray(doc)) {
    const keys = Object.keys(doc);
    if (keys.some((k) => k !== "sources"))
      throw new CatalogError(
        `${origin}: unknown field(s) ${keys.filter((k) => k !== "sources").join(", ")}; expected {"sources": [...]}`,
      );
    doc = (doc as { sources?: unknown }).sources;
  }
  if (!Array.isArray(doc)) throw new CatalogError(`${origin} must be {"sources": [...]} or an array of sources`);
  return doc.map((item: unknown, i): CatalogSource => {
    if (typeof item === "string") return { url: item };
    if (item === null || typeof item !== "object" || Array.isArray(item))
      throw new CatalogError(`${origin}: source ${i} must be a URL or {"url", "name"}`);
    const o = item as Record<string, unknown>;
    const unknown = Object.keys(o).filter((k) => k !== "url" && k !== "name");
    if (unknown.length > 0) throw new CatalogError(`${origin}: source ${i} has unknown field(s) ${unknown.join(", ")}`);
    if (typeof o.url !== "string") throw new CatalogError(`${origin}: source ${i} needs "url" (a string)`);
    if (o.name !== undefined && typeof o.name !== "string")
      throw new CatalogError(`${origin}: source ${i}: "name" must be a string`);
    return o.name === undefined ? { url: o.url } : { url: o.url, name: o.name };
  });
}

function invalid(message: string): PaasError {
  return new PaasError("invalid_argument", message);
}

function denied(message: string): PaasError {
  return new PaasError("permission_denied", message);
}

function shown(s: string): string {
  const short = s.length > 80 ? `${s.slice(0, 80)}…` : s;
  return JSON.stringify(short).slice(1, -1);
}
