import { PaasError } from "../errors.ts";
import type { HelmStatus, JsonObject } from "../domain/release.ts";

/**
 * parseJsonOutput reads the JSON document of a helm `-o json` run. Helm may print other
 * lines to stdout first (v3 and v4 write "Pulled: …"/"Digest: …" for OCI charts, and a
 * cancelled install writes "Release X has been cancelled."), so the document is taken
 * from the first line that opens an object or an array.
 */
export function parseJsonOutput(stdout: string): unknown {
  const text = stdout.trim();
  try {
    return JSON.parse(text);
  } catch {
    // Fall through to skipping the non-JSON preamble.
  }
  const start = text.search(/^[{[]/m);
  if (start > 0) {
    try {
      return JSON.parse(text.slice(start));
    } catch {
      // Reported below.
    }
  }
  // The output may hold values or rendered Secrets: keep it out of the message.
  throw new PaasError("internal", "helm printed unexpected output", {
    cause: new Error(`unparsable helm output (${text.length} chars)`),
  });
}

/** asObject returns a JSON object, or an empty one for anything else (absent or null). */
export function asObject(value: unknown): JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as JsonObject) : {};
}

/** str reads a string field, accepting numbers (helm list prints revisions as strings and vice versa). */
export function str(o: JsonObject, key: string): string {
  const v = o[key];
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(v);
  return "";
}

/** int reads an integer field that helm prints either as a number or as a string. */
export function int(o: JsonObject, key: string): number {
  const v = o[key];
  const n = typeof v === "number" ? v : typeof v === "string" ? Number.parseInt(v, 10) : Number.NaN;
  return Number.isFinite(n) ? n : 0;
}

/**
 * date turns a helm timestamp into a Date; helm v3 prints "" for an unset time and Go's
 * zero time is year 1, both meaning "never".
 */
export function date(value: unknown): Date | undefined {
  if (typeof value !== "string" || value === "" || value === "-") return undefined;
  const d = new Date(value);
  if (Number.isNaN(d.getTime()) || d.getUTCFullYear() <= 1) return undefined;
  return d;
}

const STATUSES: ReadonlySet<string> = new Set<HelmStatus>([
  "unknown",
  "deployed",
  "uninstalled",
  "superseded",
  "failed",
  "uninstalling",
  "pending-install",
  "pending-upgrade",
  "pending-rollback",
]);

/** status maps helm's status string to HelmStatus; anything unrecognised becomes "unknown". */
export function status(value: unknown): HelmStatus {
  return typeof value === "string" && STATUSES.has(value) ? (value as HelmStatus) : "unknown";
}
