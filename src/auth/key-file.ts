import { createHash } from "node:crypto";
import { patternProblem, Scope, VERBS, type Verb } from "./scopes.ts";

/**
 * The API_KEYS_FILE format (JSON; also valid YAML, since YAML 1.2 is a superset of JSON):
 *
 *   {"keys": [
 *     {"id": "ci-team-a", "key_sha256": "<64 hex>", "namespaces": ["paas-ws-a"], "verbs": ["read", "deploy"]},
 *     {"id": "erp", "key": "<plain key, hashed at load>", "namespaces": ["paas-ws-team-*"], "verbs": ["*"]}
 *   ]}
 *
 * or the bare array. Every mistake is reported by entry index, id and field name — never with
 * a key or a key hash in the message, since the message is logged.
 */

/** NamedKey is a scoped key as held in memory: only the SHA-256 digest of the key. */
export interface NamedKey {
  id: string;
  digest: Buffer;
  scope: Scope;
}

/** KeyFileError describes a broken key file; its message is safe to log. */
export class KeyFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyFileError";
  }
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const FIELDS = new Set(["id", "key", "key_sha256", "namespaces", "verbs"]);

/** sha256 is the digest keys are stored and compared as. */
export function sha256(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

/** staticKeyId is the caller id of an unscoped key (API_KEY, API_KEY_FILE): key-<first 4 digest bytes>. */
export function staticKeyId(digest: Buffer): string {
  return `key-${digest.subarray(0, 4).toString("hex")}`;
}

/** keyProblem checks a plain key as API_KEY is checked; undefined when fine. Never echoes the key. */
export function keyProblem(key: string): string | undefined {
  if (key.length < 16) return "API keys must be at least 16 characters long";
  if (!/^[\x21-\x7e]+$/.test(key)) return "API keys must be printable ASCII without spaces";
  return undefined;
}

/** parseKeyFile parses and validates the whole file; any mistake rejects the whole file. */
export function parseKeyFile(text: string, prefix: string): NamedKey[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // JSON.parse's message quotes the input, which may hold a key: say only that it is broken.
    throw new KeyFileError("not valid JSON");
  }
  if (doc !== null && typeof doc === "object" && !Array.isArray(doc)) {
    const extra = Object.keys(doc).filter((k) => k !== "keys");
    if (extra.length > 0)
      throw new KeyFileError(`unknown top-level field(s) ${extra.map(shown).join(", ")}; expected {"keys": [...]}`);
    doc = (doc as { keys?: unknown }).keys;
  }
  if (!Array.isArray(doc)) throw new KeyFileError('must be {"keys": [...]} or an array of keys');
  const keys = doc.map((entry: unknown, i) => parseEntry(entry, i, prefix));
  const ids = new Set<string>();
  const digests = new Map<string, string>();
  for (const k of keys) {
    if (ids.has(k.id)) throw new KeyFileError(`id "${k.id}" appears twice`);
    ids.add(k.id);
    const hex = k.digest.toString("hex");
    const other = digests.get(hex);
    if (other !== undefined) throw new KeyFileError(`keys "${other}" and "${k.id}" are the same key`);
    digests.set(hex, k.id);
  }
  return keys;
}

function parseEntry(entry: unknown, i: number, prefix: string): NamedKey {
  if (entry === null || typeof entry !== "object" || Array.isArray(entry))
    throw new KeyFileError(`entry ${i} must be an object`);
  const o = entry as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => !FIELDS.has(k));
  if (unknown.length > 0) throw new KeyFileError(`entry ${i}: unknown field(s) ${unknown.map(shown).join(", ")}`);
  if (typeof o.id !== "string" || !ID.test(o.id)) {
    throw new KeyFileError(
      `entry ${i}: "id" must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
  const id = o.id;
  const at = `entry ${i} ("${id}")`;
  if (id === "anonymous" || /^key-[0-9a-f]{8}$/.test(id)) throw new KeyFileError(`${at}: the id is reserved`);
  if ((o.key === undefined) === (o.key_sha256 === undefined))
    throw new KeyFileError(`${at}: give exactly one of "key" and "key_sha256"`);
  let digest: Buffer;
  if (o.key !== undefined) {
    if (typeof o.key !== "string") throw new KeyFileError(`${at}: "key" must be a string`);
    const problem = keyProblem(o.key);
    if (problem) throw new KeyFileError(`${at}: ${problem}`);
    digest = sha256(o.key);
  } else {
    if (typeof o.key_sha256 !== "string" || !/^[0-9a-fA-F]{64}$/.test(o.key_sha256)) {
      throw new KeyFileError(`${at}: "key_sha256" must be 64 hexadecimal digits (sha256sum of the key)`);
    }
    digest = Buffer.from(o.key_sha256, "hex");
  }
  if (!Array.isArray(o.namespaces) || o.namespaces.length === 0 || !o.namespaces.every((n) => typeof n === "string")) {
    throw new KeyFileError(`${at}: "namespaces" must be a non-empty list of names, prefixes ending in '*', or '*'`);
  }
  (o.namespaces as string[]).forEach((pattern, j) => {
    const problem = patternProblem(pattern, prefix);
    if (problem) throw new KeyFileError(`${at}: namespaces[${j}] ${shown(pattern)} ${problem}`);
  });
  if (!Array.isArray(o.verbs) || o.verbs.length === 0 || !o.verbs.every((v) => typeof v === "string")) {
    throw new KeyFileError(`${at}: "verbs" must be a non-empty list of ${VERBS.join(", ")} or '*'`);
  }
  const verbs = new Set<Verb>();
  (o.verbs as string[]).forEach((v, j) => {
    if (v === "*") VERBS.forEach((x) => verbs.add(x));
    else if ((VERBS as readonly string[]).includes(v)) verbs.add(v as Verb);
    else throw new KeyFileError(`${at}: verbs[${j}] ${shown(v)} is not a verb (known: ${VERBS.join(", ")}, '*')`);
  });
  return { id, digest, scope: new Scope(o.namespaces as string[], verbs) };
}

// Anything read from the file might be a key pasted into the wrong place. Keys are at least
// 16 characters long, so shorter strings are shown (to help find the mistake), longer ones not.
function shown(s: string): string {
  return s.length < 16 && /^[\x20-\x7e]*$/.test(s) ? JSON.stringify(s) : "(not shown)";
}
