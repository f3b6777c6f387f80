import { PaasError } from "../errors.ts";
import { DNS1123_SUBDOMAIN_MAX, isDnsLabel } from "../domain/names.ts";

/**
 * Strict parsing of chart source URLs (http(s) chart repositories and oci:// registries).
 *
 * Helm is written in Go and parses URLs with net/url and resolves hosts with the Go or the C
 * resolver; this service parses them with WHATWG URL. Wherever the two could disagree the
 * reference is refused instead of guessed at: only canonical hosts (no numeric, octal or hex
 * IPv4 spellings, no trailing dot, no percent-encoding), no userinfo, no backslashes, no
 * percent-encoding or dot segments in the path, no query or fragment. What passes is
 * re-serialised from the parsed parts, so helm gets exactly what was checked.
 * Nothing here touches the network or the file system.
 */

export type Scheme = "http" | "https" | "oci";

/** SourceUrl is a parsed, normalised chart source location. */
export interface SourceUrl {
  scheme: Scheme;
  /** Lowercase DNS name or dotted-quad IPv4, or a bracketed IPv6 literal in canonical form. */
  host: string;
  /** The effective port: the explicit one, else the scheme's default (http 80, https and oci 443). */
  port: number;
  /** The port as written ("" when absent); kept so that the re-serialised URL matches the input. */
  portText: string;
  /** Path segments, never empty strings, never "." or "..". */
  path: string[];
  /** Whether the path ended with "/". */
  trailingSlash: boolean;
}

const DEFAULT_PORT: Record<Scheme, number> = { http: 80, https: 443, oci: 443 };
const MAX_URL = 512;
// scheme://authority path — query and fragment are matched only to be refused with a clear reason.
const URL_SHAPE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/;
const AUTHORITY = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?$/;
// RFC 3986 pchar minus '%': percent-encoding is refused outright (see encodedSegment).
const SEGMENT = /^[A-Za-z0-9._~!$&'()*+,;=:@-]+$/;

const invalid = (message: string) => new PaasError("invalid_argument", message);

/** parseSourceUrl parses `raw` strictly; any irregularity is INVALID_ARGUMENT naming `field`. */
export function parseSourceUrl(raw: string, field: string, schemes: readonly Scheme[]): SourceUrl {
  if (raw.length > MAX_URL) throw invalid(`${field} must be at most ${MAX_URL} characters`);
  if (/[\s\x00-\x1f\x7f]/.test(raw)) throw invalid(`${field} must not contain spaces or control characters`);
  if (raw.includes("\\")) throw invalid(`${field} must not contain a backslash`);
  const m = URL_SHAPE.exec(raw);
  if (!m) throw invalid(`${field} is not a URL of the form ${schemes.map((s) => `${s}://host/path`).join(" or ")}`);
  const [, schemeText, authority, pathText, query, fragment] = m as unknown as [
    string,
    string,
    string,
    string,
    string?,
    string?,
  ];
  const scheme = schemeText.toLowerCase();
  if (scheme === "file") throw invalid(`${field} must not be a file:// URL: local files are refused`);
  if (!(schemes as readonly string[]).includes(scheme))
    throw invalid(`${field} must use ${schemes.map((s) => `${s}://`).join(" or ")}`);
  if (query !== undefined || fragment !== undefined) throw invalid(`${field} must not have a query or fragment`);
  if (authority.includes("@")) throw invalid(`${field} must not carry credentials (user:password@)`);
  const a = AUTHORITY.exec(authority);
  if (!a) throw invalid(`${field} does not name a valid host`);
  const [, hostText, portText = ""] = a as unknown as [string, string, string?];
  const host = canonicalHost(hostText, field);
  let port = DEFAULT_PORT[scheme as Scheme];
  if (portText !== "") {
    port = Number(portText);
    if (port < 1 || port > 65535 || portText.startsWith("0")) throw invalid(`${field} has an invalid port`);
  }
  const { path, trailingSlash } = parsePath(pathText, field);
  return { scheme: scheme as Scheme, host, port, portText, path, trailingSlash };
}

/** formatSourceUrl re-serialises a parsed URL (lowercase scheme and host, the port as written). */
export function formatSourceUrl(u: SourceUrl): string {
  const port = u.portText ? `:${u.portText}` : "";
  const path = u.path.length > 0 ? `/${u.path.join("/")}${u.trailingSlash ? "/" : ""}` : u.trailingSlash ? "/" : "";
  return `${u.scheme}://${u.host}${port}${path}`;
}

function canonicalHost(text: string, field: string): string {
  if (text.startsWith("[")) {
    // IPv6: compared in the parser's canonical (compressed, lowercase) form; zone ids are refused.
    try {
      return new URL(`http://${text}/`).hostname;
    } catch {
      throw invalid(`${field} has an invalid IPv6 address`);
    }
  }
  const host = text.toLowerCase();
  if (host.length > DNS1123_SUBDOMAIN_MAX || !host.split(".").every(isDnsLabel)) {
    throw invalid(`${field} does not name a valid host`);
  }
  let parsed: string;
  try {
    parsed = new URL(`http://${host}/`).hostname;
  } catch {
    throw invalid(`${field} does not name a valid host`);
  }
  // WHATWG turns 2852039166, 0xA9FEA9FE, 0251.0376.0251.0376 or 169.254.43518 into
  // 169.254.169.254, and C resolvers (helm with cgo) accept such spellings too: only the
  // canonical spelling is accepted, so that every parser sees the same address.
  if (parsed !== host)
    throw invalid(`${field} must spell its host canonically (an IPv4 address as four decimal numbers)`);
  return host;
}

function parsePath(text: string, field: string): { path: string[]; trailingSlash: boolean } {
  if (text === "" || text === "/") return { path: [], trailingSlash: text === "/" };
  const parts = text.split("/").slice(1);
  const trailingSlash = parts[parts.length - 1] === "";
  if (trailingSlash) parts.pop();
  for (const seg of parts) {
    if (seg === "") throw invalid(`${field} must not contain empty path segments ('//')`);
    if (seg === "." || seg === "..") throw invalid(`${field} must not contain '.' or '..' path segments`);
    if (seg.includes("%")) throw invalid(encodedSegment(seg, field));
    if (!SEGMENT.test(seg)) throw invalid(`${field} contains characters that are not allowed in a path`);
  }
  return { path: parts, trailingSlash };
}

// Percent-encoding is never needed in a chart repository or registry path, and servers
// decode it differently (%2e%2e, %2f, double encoding): refuse it, naming the worst case.
function encodedSegment(seg: string, field: string): string {
  let decoded = seg;
  try {
    for (let i = 0; i < 3 && decoded.includes("%"); i++) decoded = decodeURIComponent(decoded);
  } catch {
    return `${field} has invalid percent-encoding`;
  }
  if (decoded === "." || decoded === ".." || decoded.includes("/") || decoded.includes("\\")) {
    return `${field} must not contain '..', '/' or '\\' in percent-encoded form`;
  }
  return `${field} must not contain percent-encoded characters`;
}

// ------------------------------------------------------------------ forbidden hosts

/** Names of cloud metadata services (a request to them can leak node credentials). */
const FORBIDDEN_NAMES = new Set(["metadata.google.internal", "metadata"]);

/**
 * forbiddenHost says why a host must never be contacted, or undefined: link-local addresses
 * (169.254.0.0/16, fe80::/10, where cloud metadata services live), 100.100.100.200 (Alibaba
 * Cloud metadata), fd00:ec2::254 (AWS IMDS over IPv6), metadata.google.internal, and the same
 * IPv4 addresses embedded in IPv6 (IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d,
 * SIIT ::ffff:0:a.b.c.d, NAT64 64:ff9b::a.b.c.d). Names that merely resolve to such an
 * address cannot be recognised without DNS; a catalogue is what keeps them out.
 */
export function forbiddenHost(host: string): string | undefined {
  if (FORBIDDEN_NAMES.has(host)) return "a cloud metadata service";
  if (host.startsWith("[")) {
    const words = ipv6Words(host.slice(1, -1));
    if (words === undefined) return undefined;
    if ((words[0]! & 0xffc0) === 0xfe80) return "a link-local address";
    if (words.join(":") === [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254].join(":")) return "a cloud metadata service";
    const v4 = embeddedIPv4(words);
    return v4 === undefined ? undefined : forbiddenIPv4(v4);
  }
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  return v4 ? forbiddenIPv4(v4.slice(1).map(Number)) : undefined;
}

function forbiddenIPv4(b: number[]): string | undefined {
  if (b[0] === 169 && b[1] === 254) return "a link-local address";
  if (b.join(".") === "100.100.100.200") return "a cloud metadata service";
  return undefined;
}

function embeddedIPv4(w: number[]): number[] | undefined {
  const zero = (from: number, to: number) => w.slice(from, to).every((x) => x === 0);
  const tail = [w[6]! >> 8, w[6]! & 0xff, w[7]! >> 8, w[7]! & 0xff];
  if (zero(0, 5) && w[5] === 0xffff) return tail; // ::ffff:a.b.c.d
  if (zero(0, 4) && w[4] === 0xffff && w[5] === 0) return tail; // ::ffff:0:a.b.c.d
  if (zero(0, 6) && (w[6] !== 0 || w[7]! > 1)) return tail; // ::a.b.c.d (not :: or ::1)
  if (w[0] === 0x64 && w[1] === 0xff9b && zero(2, 6)) return tail; // 64:ff9b::/96
  return undefined;
}

/** ipv6Words parses an IPv6 address (with "::" and an optional dotted IPv4 tail) into 8 words. */
export function ipv6Words(text: string): number[] | undefined {
  let s = text.toLowerCase();
  const dotted = /^(.*:)(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (dotted) {
    const b = dotted.slice(2).map(Number);
    if (b.some((x) => x > 255)) return undefined;
    s = `${dotted[1]}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const part = (p: string) => (p === "" ? [] : p.split(":"));
  const head = part(halves[0]!);
  const tail = halves.length === 2 ? part(halves[1]!) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  if (!all.every((x) => /^[0-9a-f]{1,4}$/.test(x))) return undefined;
  return all.map((x) => Number.parseInt(x, 16));
}
