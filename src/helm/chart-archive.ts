import { createReadStream } from "node:fs";
import { createGunzip } from "node:zlib";
import { FAILSAFE_SCHEMA, load } from "js-yaml";
import { PaasError } from "../errors.ts";

// A packaged chart (.tgz) is a gzipped tar whose entries sit under one top directory;
// Helm's loader strips that first path component, so the chart's identity is the entry
// "<top>/Chart.yaml". Only that entry is read: the stream stops as soon as it is found,
// and no more than MAX_SCANNED bytes of tar are ever inflated (a chart archive is a few
// hundred KiB; Helm's own limit on a decompressed chart is 100 MiB).

/** ArchiveChart is the identity of a packaged chart, read from its Chart.yaml. */
export interface ArchiveChart {
  name: string;
  version: string;
}

const BLOCK = 512;
const MAX_SCANNED = 64 * 1024 * 1024;
const MAX_CHART_YAML = 1024 * 1024;

/**
 * readChartArchive returns the name and version of the packaged chart at `path`. Scalars
 * are read as YAML strings (failsafe schema), so "version: 1.10" stays "1.10" as Helm
 * reads it, not the number 1.1.
 */
export async function readChartArchive(path: string): Promise<ArchiveChart> {
  const text = await chartYaml(path);
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

/** The text of <top>/Chart.yaml inside the gzipped tar at `path`. */
async function chartYaml(path: string): Promise<string> {
  const gunzip = createGunzip();
  const input = createReadStream(path);
  input.on("error", (err) => gunzip.destroy(err));
  input.pipe(gunzip);
  let buffered: Buffer = Buffer.alloc(0);
  let scanned = 0;
  let skip = 0; // bytes of the current entry's data (and padding) still to pass over
  let want: { size: number } | undefined; // set while Chart.yaml's data is being collected
  let longName: string | undefined; // GNU long name ('L') or PAX path ('x') of the next entry
  try {
    for await (const chunk of gunzip) {
      scanned += (chunk as Buffer).length;
      if (scanned > MAX_SCANNED) throw invalid(`it has no Chart.yaml within its first ${MAX_SCANNED} bytes`);
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
          return buffered.subarray(0, want.size).toString("utf8");
        }
        if (buffered.length < BLOCK) break;
        const header = buffered.subarray(0, BLOCK);
        if (header.every((b) => b === 0)) throw invalid("it has no Chart.yaml");
        const size = octal(header.subarray(124, 136));
        const type = String.fromCharCode(header[156] ?? 0);
        const padded = Math.ceil(size / BLOCK) * BLOCK;
        // Metadata entries carry the next entry's name in their data.
        if (type === "L" || type === "x") {
          if (size > 64 * 1024) throw invalid("a tar header is too large");
          if (buffered.length < BLOCK + padded) break;
          const data = buffered.subarray(BLOCK, BLOCK + size).toString("utf8");
          longName = type === "L" ? data.replace(/\0.*$/s, "") : paxPath(data) ?? longName;
          buffered = buffered.subarray(BLOCK + padded);
          continue;
        }
        const name = longName ?? entryName(header);
        longName = undefined;
        buffered = buffered.subarray(BLOCK);
        if ((type === "0" || type === "\0") && isTopChartYaml(name)) {
          if (size > MAX_CHART_YAML) throw invalid("its Chart.yaml is too large");
          want = { size };
          continue;
        }
        skip = padded;
      }
    }
  } catch (err) {
    if (err instanceof PaasError) throw err;
    throw invalid("it is not a gzipped tar archive", err);
  } finally {
    input.destroy();
    gunzip.destroy();
  }
  throw invalid("it has no Chart.yaml");
}

// "<top>/Chart.yaml", after the normalisations Helm's loader applies (leading "./", backslashes).
function isTopChartYaml(name: string): boolean {
  const parts = name.replaceAll("\\", "/").replace(/^(\.\/)+/, "").split("/");
  return parts.length === 2 && parts[0] !== "" && parts[1] === "Chart.yaml";
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
  return new PaasError("invalid_argument", `The chart archive cannot be read: ${why}`, cause === undefined ? undefined : { cause });
}
