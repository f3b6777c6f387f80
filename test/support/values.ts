import type { JsonObject, JsonValue } from "../../src/domain/release.ts";

/** nested returns {a: {a: … {a: 1}}} with `depth` objects. */
export function nested(depth: number): JsonObject {
  let v: JsonValue = 1;
  for (let i = 0; i < depth; i++) v = { a: v };
  return v as JsonObject;
}

/** manyKeys returns an object with n keys k0…k<n-1>. */
export function manyKeys(n: number): JsonObject {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
}
