import { createHash } from "node:crypto";

/**
 * canonicalJson serializes a JSON value with object keys sorted (by UTF-16 code units, as
 * RFC 8785 does) and no whitespace, so that equal values always give equal text. It follows
 * JSON.stringify otherwise: toJSON is honoured, undefined/function members are left out,
 * undefined in arrays and non-finite numbers become null; a bigint or a cycle throws TypeError.
 */
export function canonicalJson(value: unknown): string {
  const out = serialize(value, new Set());
  return out === undefined ? "null" : out;
}

function serialize(value: unknown, seen: Set<object>): string | undefined {
  if (value !== null && typeof value === "object" && typeof (value as { toJSON?: unknown }).toJSON === "function") {
    value = (value as { toJSON: () => unknown }).toJSON();
  }
  switch (typeof value) {
    case "string":
    case "number":
    case "boolean":
      return JSON.stringify(value);
    case "undefined":
    case "function":
    case "symbol":
      return undefined;
    case "bigint":
      throw new TypeError("canonicalJson: a bigint has no JSON form");
  }
  if (value === null) return "null";
  const obj = value as object;
  if (seen.has(obj)) throw new TypeError("canonicalJson: cyclic value");
  seen.add(obj);
  try {
    if (Array.isArray(obj)) {
      return `[${obj.map((v) => serialize(v, seen) ?? "null").join(",")}]`;
    }
    const parts: string[] = [];
    for (const key of Object.keys(obj).sort()) {
      const v = serialize((obj as Record<string, unknown>)[key], seen);
      if (v !== undefined) parts.push(`${JSON.stringify(key)}:${v}`);
    }
    return `{${parts.join(",")}}`;
  } finally {
    seen.delete(obj);
  }
}

/** sha256Hex returns the SHA-256 of the UTF-8 text as 64 lowercase hex digits. */
export function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/** valuesDigest is AuditRecord.valuesSha256: "" when there are no values (undefined, null, {}). */
export function valuesDigest(values: unknown): string {
  if (values === undefined || values === null) return "";
  if (typeof values === "object" && !Array.isArray(values) && Object.keys(values).length === 0) return "";
  return sha256Hex(canonicalJson(values));
}
