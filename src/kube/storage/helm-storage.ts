import { promisify } from "node:util";
import { constants, gunzip, gzip } from "node:zlib";
import type { V1Secret } from "@kubernetes/client-node";
import { PaasError } from "../../errors.ts";
import { date as helmDate, status as helmStatus } from "../../helm/parse-json.ts";
import type { JsonObject, ReleaseInfo } from "../../domain/release.ts";
import type { StoredRelease } from "../kube-types.ts";

// Helm's Secret storage driver (pkg/storage/driver/{secrets,util}.go, identical in v3 and v4):
// data["release"] = base64(gzip(json(release))). The Secret's JSON form base64-encodes
// data values once more, and client-node hands them over still encoded, so a value read
// from the API is base64(base64(gzip(json))). Releases written before Helm compressed
// them lack the gzip magic and are plain JSON.

/** HELM_SECRET_TYPE is the `type` of Helm's storage Secrets. */
export const HELM_SECRET_TYPE = "helm.sh/release.v1";

/** MAX_RELEASE_JSON_BYTES caps a decompressed release (a Secret holds at most 1 MiB of gzip, which could inflate a thousandfold). */
export const MAX_RELEASE_JSON_BYTES = 64 * 1024 * 1024;

const GZIP_MAGIC = [0x1f, 0x8b, 0x08];
const gunzipAsync = promisify(gunzip);
const gzipAsync = promisify(gzip);

/** The part of Helm's release JSON (pkg/release/v1.Release) that ReleaseInfo needs. */
interface HelmReleaseJson {
  name?: string;
  namespace?: string;
  version?: number;
  config?: JsonObject | null;
  manifest?: string;
  info?: { status?: string; first_deployed?: string; last_deployed?: string; description?: string; notes?: string };
  chart?: { metadata?: { name?: string; version?: string; appVersion?: string } };
}

/**
 * decodeReleaseData turns the `release` value of a storage Secret, as the API returns it,
 * into Helm's release JSON; the decompressed size is capped (async gunzip keeps the event
 * loop free while a large release inflates).
 */
export async function decodeReleaseData(data: string, maxBytes = MAX_RELEASE_JSON_BYTES): Promise<unknown> {
  const text = await decodeReleaseText(data, maxBytes);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new PaasError("internal", "stored release is not valid JSON", { cause: err });
  }
}

/** decodeReleaseText is decodeReleaseData without the JSON parsing: Helm's release JSON as text. */
export async function decodeReleaseText(data: string, maxBytes = MAX_RELEASE_JSON_BYTES): Promise<string> {
  const helmText = Buffer.from(data, "base64").toString("latin1");
  let bytes: Buffer = Buffer.from(helmText, "base64");
  if (bytes.length > 3 && GZIP_MAGIC.every((b, i) => bytes[i] === b)) {
    try {
      bytes = await gunzipAsync(bytes, { maxOutputLength: maxBytes });
    } catch (err) {
      const tooLarge = (err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE" || err instanceof RangeError;
      throw new PaasError(
        "internal",
        tooLarge ? `stored release exceeds ${maxBytes} bytes when decompressed` : "stored release is not valid gzip",
        { cause: err },
      );
    }
  } else if (bytes.length > maxBytes) {
    throw new PaasError("internal", `stored release exceeds ${maxBytes} bytes`);
  }
  return bytes.toString("utf8");
}

/**
 * encodeReleaseData is the inverse of decodeReleaseText, as Helm's encodeRelease writes it
 * (gzip at best compression, base64), base64-encoded once more for the Secret's JSON form.
 */
export async function encodeReleaseData(json: string): Promise<string> {
  const gz = await gzipAsync(Buffer.from(json, "utf8"), { level: constants.Z_BEST_COMPRESSION });
  return Buffer.from(gz.toString("base64"), "latin1").toString("base64");
}

/**
 * parseReleaseJsonExact parses Helm's release JSON keeping every number's source text
 * (JSON.rawJSON), so that stringifying the result writes the values back exactly as Helm
 * stored them (no float rounding of big integers in values).
 */
export function parseReleaseJsonExact(text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text, (_key, value: unknown, context?: { source?: string }) =>
      typeof value === "number" && context?.source !== undefined ? rawJson(context.source) : value,
    );
  } catch (err) {
    throw new PaasError("internal", "stored release is not valid JSON", { cause: err });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new PaasError("internal", "stored release is not a JSON object");
  return parsed as Record<string, unknown>;
}

// JSON.rawJSON (ES2025; Node >= 21) is not in the es2024 lib typings.
const rawJson = (text: string): unknown => (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON(text);

/** releaseInfoFromJson maps Helm's release JSON onto ReleaseInfo; `fallbackNamespace` covers releases stored without one. */
export function releaseInfoFromJson(json: unknown, fallbackNamespace = ""): ReleaseInfo {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new PaasError("internal", "stored release is not a JSON object");
  }
  const rel = json as HelmReleaseJson;
  const meta = rel.chart?.metadata ?? {};
  const status = helmStatus(rel.info?.status);
  const info: ReleaseInfo = {
    name: rel.name ?? "",
    namespace: rel.namespace || fallbackNamespace,
    revision: rel.version ?? 0,
    status,
    chart: meta.name ?? "",
    chartVersion: meta.version ?? "",
    appVersion: meta.appVersion ?? "",
    updated: helmDate(rel.info?.last_deployed),
    description: rel.info?.description ?? "",
    values: rel.config ?? {},
    notes: rel.info?.notes ?? "",
  };
  // Helm stamps last_deployed when it creates the pending record (install: first_deployed
  // too), so it says when the operation started. Set only for pending-* (absent otherwise).
  if (isPendingStatus(status)) {
    const since = helmDate(rel.info?.last_deployed) ?? helmDate(rel.info?.first_deployed);
    if (since) info.pendingSince = since;
  }
  return info;
}

/** PENDING_STATUSES are the statuses of a revision whose helm operation has not finished (or died). */
export const PENDING_STATUSES = ["pending-install", "pending-upgrade", "pending-rollback"] as const;
export type PendingStatus = (typeof PENDING_STATUSES)[number];

/** isPendingStatus tells whether a Helm status means "operation in progress". */
export function isPendingStatus(status: string | undefined): status is PendingStatus {
  return (PENDING_STATUSES as readonly string[]).includes(status ?? "");
}

/** secretRevision is the revision a storage Secret holds: its `version` label, else the `.v<N>` suffix of its name. */
export function secretRevision(secret: V1Secret): number {
  const label = secret.metadata?.labels?.["version"];
  const fromLabel = label === undefined ? NaN : Number.parseInt(label, 10);
  if (Number.isFinite(fromLabel)) return fromLabel;
  const m = /\.v(\d+)$/.exec(secret.metadata?.name ?? "");
  return m ? Number.parseInt(m[1]!, 10) : 0;
}

/** isStorageSecret tells whether a Secret is one of Helm's release records. */
export function isStorageSecret(secret: V1Secret): boolean {
  return secret.type === HELM_SECRET_TYPE && secret.metadata?.labels?.["owner"] === "helm";
}

/** newestStorageSecret picks the highest revision among a release's storage Secrets. */
export function newestStorageSecret(secrets: Iterable<V1Secret>): V1Secret | undefined {
  let best: V1Secret | undefined;
  for (const s of secrets) {
    if (!isStorageSecret(s)) continue;
    if (best === undefined || secretRevision(s) > secretRevision(best)) best = s;
  }
  return best;
}

/** DecodedSecret is a storage Secret's release with the rendered manifest, which says what the release runs. */
export interface DecodedSecret {
  stored: StoredRelease;
  manifest: string;
}

/** decodeStorageSecret decodes one storage Secret into the release it records, the Secret's labels and the manifest. */
export async function decodeStorageSecret(secret: V1Secret, maxBytes = MAX_RELEASE_JSON_BYTES): Promise<DecodedSecret> {
  const data = secret.data?.["release"];
  if (!data) throw new PaasError("internal", `storage secret ${secret.metadata?.name ?? "?"} has no release data`);
  const json = await decodeReleaseData(data, maxBytes);
  const release = releaseInfoFromJson(json, secret.metadata?.namespace ?? "");
  // Helm does not store labels in the JSON (json:"-"); a record without a version in it still has one in its labels.
  if (release.revision === 0) release.revision = secretRevision(secret);
  const manifest = (json as HelmReleaseJson).manifest;
  return {
    stored: { release, labels: { ...(secret.metadata?.labels ?? {}) } },
    manifest: typeof manifest === "string" ? manifest : "",
  };
}

/** storedReleaseFromSecret decodes one storage Secret into the release it records and the Secret's labels. */
export async function storedReleaseFromSecret(
  secret: V1Secret,
  maxBytes = MAX_RELEASE_JSON_BYTES,
): Promise<StoredRelease> {
  return (await decodeStorageSecret(secret, maxBytes)).stored;
}
