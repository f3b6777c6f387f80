import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { FAILSAFE_SCHEMA, load, loadAll } from "js-yaml";
import { PaasError } from "../errors.ts";

// A packaged chart (.tgz) is a gzipped tar whose entries sit under one top directory;
// Helm's loader strips that first path component, so the chart's identity is the entry
// "<top>/Chart.yaml". The archive is read as a stream, entry by entry, and no more than
// MAX_SCANNED bytes of tar are ever inflated, subcharts included (a chart archive is a few
// hundred KiB; Helm's own limit on a decompressed chart is 100 MiB). Only Chart.yaml, the
// files in crds/ and packaged subcharts are kept in memory, each bounded.

/** ArchiveChart is what install and upgrade need to know of a packaged chart. */
export interface ArchiveChart {
  name: string;
  version: string;
  /**
   * The CustomResourceDefinitions the chart ships in crds/ (its own and its subcharts'), as
   * "<path in the chart> (<Kind>.<group>, …)"; absent when there are none.
   */
  crds?: string[];
}

const BLOCK = 512;
const MAX_SCANNED = 64 * 1024 * 1024;
const MAX_CHART_YAML = 1024 * 1024;
// A CRD file larger than this is named without its kinds; a packaged subchart larger is refused.
const MAX_KEPT = 4 * 1024 * 1024;
const MAX_SUBCHART_DEPTH = 5;

/**
 * readChartArchive returns the name and version of the packaged chart at `path`, and the
 * CRD files it ships (helm installs the manifests in crds/ of the chart and of every subchart
 * before anything else; tenants may not have them: src/helm/cli.ts refuses such charts).
 * Scalars are read as YAML strings (failsafe schema), so "version: 1.10" stays "1.10" as Helm
 * reads it, not the number 1.1.
 */
export async function readChartArchive(path: string): Promise<ArchiveChart> {
  const input = createReadStream(path);
  const budget = { left: MAX_SCANNED };
  const { chartYaml, crds } = await scanChart(input, budget, "", 0);
  if (chartYaml === undefined) throw invalid("it has no Chart.yaml");
  const meta = chartMeta(chartYaml);
  return { name: meta.name, version: meta.version, ...(crds.length > 0 ? { crds } : {}) };
}

function chartMeta(text: string): { name: string; version: string } {
  let doc: unknown;
  try {
    doc = load(text, { schema: FAILSAFE_SCHEMA });
  } catch (err) {
    throw invalid("its Chart.yaml is not valid YAML", err);
  }
  const meta = (typeof doc === "object" && doc !== null ? doc : {}) as Record<string, unknown>;
  const name = typeof meta.name === "string" ? meta.name.trim() : "";
  const version = typeof meta.version === "string" ? meta.version.trim() : "";
  if (!name || !version) throw invalid("its Chart.yaml has no name or version");
  return { name, version };
}

// A file of crds/ (of the chart or of a subchart directory), as helm's loader sees paths once
// the top directory is stripped: Chart.CRDObjects() takes files under crds/ with a manifest
// extension.
const CRD_FILE = /^(?:charts\/[^/]+\/)*crds\/.+\.(?:ya?ml|json)$/;
// A packaged subchart: helm loads every archive in charts/ (of the chart or a subchart).
const SUBCHART_ARCHIVE = /^(?:charts\/[^/]+\/)*charts\/[^/]+\.tgz$/;

/**
 * scanChart walks one gzipped chart archive: it keeps its top Chart.yaml and lists its CRD
 * files, descending into packaged subcharts (`within` prefixes their paths, as
 * "charts/<subchart>/").
 */
async function scanChart(
  gzipped: Readable,
  budget: { left: number },
  within: string,
  depth: number,
): Promise<{ chartYaml?: string; crds: string[] }> {
  let chartYaml: string | undefined;
  const crds: string[] = [];
  await walkTar(gzipped, budget, async (name, size, data) => {
    const path = chartPath(name);
    if (path === undefined) return false;
    if (path === "Chart.yaml") {
      if (size > MAX_CHART_YAML) throw invalid("its Chart.yaml is too large");
      if (!data) return true;
      chartYaml = data.toString("utf8");
      return false;
    }
    if (CRD_FILE.test(path)) {
      if (size > MAX_KEPT) {
        crds.push(`${within}${path}`);
        return false;
      }
      if (!data) return true;
      const kinds = crdKinds(data.toString("utf8"));
      crds.push(`${within}${path}${kinds.length > 0 ? ` (${kinds.join(", ")})` : ""}`);
      return false;
    }
    if (SUBCHART_ARCHIVE.test(path)) {
      if (depth >= MAX_SUBCHART_DEPTH) throw invalid("its subcharts are nested too deeply");
      if (size > MAX_KEPT) throw invalid(`its subchart ${path} is too large`);
      if (!data) return true;
      const sub = await scanChart(Readable.from([data]), budget, `${within}${path.replace(/\.tgz$/, "")}/`, depth + 1);
      crds.push(...sub.crds);
      return false;
    }
    return false;
  });
  return { ...(chartYaml === undefined ? {} : { chartYaml }), crds };
}

/** crdKinds names the CustomResourceDefinitions of a crds/ file: "Widget.hostile.example.com". */
function crdKinds(text: string): string[] {
  const out: string[] = [];
  try {
    loadAll(
      text,
      (doc) => {
        const o = (typeof doc === "object" && doc !== null ? doc : {}) as {
          kind?: unknown;
          spec?: { group?: unknown; names?: { kind?: unknown } };
        };
        const kind = o.spec?.names?.kind;
        if (o.kind === "CustomResourceDefinition" && typeof kind === "string")
          out.push(typeof o.spec?.group === "string" ? `${kind}.${o.spec.group}` : kind);
      },
      { schema: FAILSAFE_SCHEMA },
    );
  } catch {
    // Not YAML helm could apply either; the file is named all the same.
  }
  return out.map((k) => k.slice(0, 120)).slice(0, 20);
}

/**
 * walkTar calls `visit` for every file entry of the gzipped tar `gzipped`: first without its
 * data; when `visit` answers true, once more with the data (the entry's size is bounded by the
 * visitor). Stops at the end-of-archive block; more than `budget.left` bytes of tar fail.
 */
async function walkTar(
  gzipped: Readable,
  budget: { left: number },
  visit: (name: string, size: number, data?: Buffer) => Promise<boolean>,
): Promise<void> {
  const gunzip = createGunzip();
  gzipped.on("error", (err) => gunzip.destroy(err));
  gzipped.pipe(gunzip);
  let buffered: Buffer = Buffer.alloc(0);
  let skip = 0; // bytes of the current entry's data (and padding) still to pass over
  let want: { name: string; size: number; padding: number } | undefined; // an entry whose data is collected
  let longName: string | undefined; // GNU long name ('L') or PAX path ('x') of the next entry
  try {
    for await (const chunk of gunzip) {
      budget.left -= (chunk as Buffer).length;
      if (budget.left < 0) throw invalid(`it is larger than ${MAX_SCANNED} bytes`);
      buffered = buffered.length === 0 ? (chunk as Buffer) : Buffer.concat([buffered, chunk as Buffer]);
      for (;;) {
        if (skip > 0) {
          const n = Math.min(skip, buffered.length);
          buffered = buffered.subarray(n);
          skip -= n;
          if (skip > 0) break;
        }
        if (want) {
          if (buffered.length < want.size) break;
          const data = Buffer.from(buffered.subarray(0, want.size));
          skip = want.size + want.padding;
          const { name, size } = want;
          want = undefined;
          await visit(name, size, data);
          continue;
        }
        if (buffered.length < BLOCK) break;
        const header = buffered.subarray(0, BLOCK);
        if (header.every((b) => b === 0)) return;
        const size = octal(header.subarray(124, 136));
        const type = String.fromCharCode(header[156] ?? 0);
        const padded = Math.ceil(size / BLOCK) * BLOCK;
        // Metadata entries carry the next entry's name in their data.
        if (type === "L" || type === "x") {
          if (size > 64 * 1024) throw invalid("a tar header is too large");
          if (buffered.length < BLOCK + padded) break;
          const data = buffered.subarray(BLOCK, BLOCK + size).toString("utf8");
          longName = type === "L" ? data.replace(/\0.*$/s, "") : (paxPath(data) ?? longName);
          buffered = buffered.subarray(BLOCK + padded);
          continue;
        }
        const name = longName ?? entryName(header);
        longName = undefined;
        buffered = buffered.subarray(BLOCK);
        if ((type === "0" || type === "\0") && (await visit(name, size))) {
          want = { name, size, padding: padded - size };
          continue;
        }
        skip = padded;
      }
    }
  } catch (err) {
    if (err instanceof PaasError) throw err;
    throw invalid("it is not a gzipped tar archive", err);
  } finally {
    gzipped.destroy();
    gunzip.destroy();
  }
}

/** chartPath is an entry's path inside the chart (the top directory stripped, as Helm's loader normalises it). */
function chartPath(name: string): string | undefined {
  const parts = name
    .replaceAll("\\", "/")
    .replace(/^(\.\/)+/, "")
    .split("/");
  if (parts.length < 2 || parts[0] === "") return undefined;
  return parts.slice(1).join("/");
}

// ustar: name (0..100) with an optional prefix (345..500) when the magic says "ustar".
function entryName(header: Buffer): string {
  const name = cstring(header.subarray(0, 100));
  const magic = header.subarray(257, 262).toString("latin1");
  const prefix = magic === "ustar" ? cstring(header.subarray(345, 500)) : "";
  return prefix ? `${prefix}/${name}` : name;
}

// PAX records: "<len> path=<value>\n".
function paxPath(data: string): string | undefined {
  for (const line of data.split("\n")) {
    const m = /^\d+ path=(.*)$/s.exec(line);
    if (m) return m[1];
  }
  return undefined;
}

function cstring(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString("utf8");
}

function octal(b: Buffer): number {
  // Base-256 (GNU) sizes start with 0x80: only for entries over 8 GiB, never a chart's.
  if ((b[0] ?? 0) & 0x80) throw invalid("a tar entry is too large");
  const n = Number.parseInt(cstring(b).trim() || "0", 8);
  if (!Number.isFinite(n) || n < 0) throw invalid("a tar header is malformed");
  return n;
}

function invalid(why: string, cause?: unknown): PaasError {
  return new PaasError(
    "invalid_argument",
    `The chart archive cannot be read: ${why}`,
    cause === undefined ? undefined : { cause },
  );
}
