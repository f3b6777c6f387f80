import { PaasError, printable } from "../errors.ts";
import { DNS1123_LABEL_MAX, isDnsLabel, isReleaseName, RELEASE_NAME_MAX } from "./names.ts";
import type { JsonObject, JsonValue } from "./release.ts";

// The front door: what callers may send. Names follow the rules of names.ts (what Kubernetes
// and Helm accept), plus this service's own: the namespace prefix, and no "--".

/** validateNamespace accepts a DNS-1123 label that starts with the prefix and is longer than it. */
export function validateNamespace(name: string, prefix: string, field = "namespace"): void {
  checkName(name, field, DNS1123_LABEL_MAX, isDnsLabel, "a DNS-1123 label (lowercase letters, digits and '-')");
  if (!name.startsWith(prefix) || name.length === prefix.length) {
    throw new PaasError("permission_denied", `${field} "${name}" is outside the managed prefix "${prefix}"`);
  }
}

/** validateReleaseName applies Helm's release-name rule (names.ts isReleaseName): "my-app.v2" is one. */
export function validateReleaseName(name: string, field = "name"): void {
  checkName(
    name,
    field,
    RELEASE_NAME_MAX,
    isReleaseName,
    "a valid Helm release name (lowercase letters, digits, '-' and '.')",
  );
}

function checkName(name: string, field: string, max: number, valid: (s: string) => boolean, what: string): void {
  if (name === "") throw new PaasError("invalid_argument", `${field} is required`);
  if (name.length > max) throw new PaasError("invalid_argument", `${field} must be at most ${max} characters`);
  // "--" is legal in DNS labels but reads like a flag and is never needed; refuse it outright.
  if (!valid(name) || name.includes("--")) {
    throw new PaasError("invalid_argument", `${field} "${printable(name)}" is not ${what}`);
  }
}

/** ValuesLimits bound a request's values (a google.protobuf.Struct) before anything runs. */
export interface ValuesLimits {
  /** Serialized JSON size, bytes (VALUES_MAX_BYTES). */
  maxBytes: number;
  /** Nesting depth of objects and arrays; the values object itself is depth 1 (VALUES_MAX_DEPTH). */
  maxDepth: number;
  /** Object keys, counted over the whole tree (VALUES_MAX_KEYS). */
  maxKeys: number;
}

export const DEFAULT_VALUES_LIMITS: ValuesLimits = { maxBytes: 256 * 1024, maxDepth: 32, maxKeys: 10_000 };

/**
 * validateValues refuses values that are too deep (INVALID_ARGUMENT: no chart needs it, and
 * deep trees are what breaks recursive parsers), have too many keys or are too large
 * serialized (RESOURCE_EXHAUSTED). It walks the tree iteratively and stops at the first
 * limit it crosses, so an oversized request costs no more than the limit.
 */
export function validateValues(values: JsonObject | undefined, limits: ValuesLimits = DEFAULT_VALUES_LIMITS): void {
  if (values === undefined) return;
  let keys = 0;
  const stack: Array<[JsonValue, number]> = [[values, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== "object") continue;
    if (depth > limits.maxDepth) {
      throw new PaasError("invalid_argument", `values are nested deeper than ${limits.maxDepth} levels`);
    }
    if (Array.isArray(node)) {
      for (const item of node) stack.push([item, depth + 1]);
      continue;
    }
    for (const key in node) {
      if (++keys > limits.maxKeys)
        throw new PaasError("resource_exhausted", `values have more than ${limits.maxKeys} keys`, {
          reason: "VALUES_TOO_LARGE",
        });
      stack.push([node[key]!, depth + 1]);
    }
  }
  const bytes = Buffer.byteLength(JSON.stringify(values), "utf8");
  if (bytes > limits.maxBytes) {
    throw new PaasError(
      "resource_exhausted",
      `values are ${bytes} bytes serialized; at most ${limits.maxBytes} are accepted`,
      { reason: "VALUES_TOO_LARGE" },
    );
  }
}

// Kubernetes quantity syntax (k8s.io/apimachinery resource.Quantity): a signed decimal number
// with an optional binary (Ki…Ei), decimal (n u m k M G T P E) or exponent suffix.
const QUANTITY = /^[+]?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;

/** validateQuantity accepts a positive Kubernetes quantity such as "500m", "2", "4Gi". */
export function validateQuantity(value: string, field: string): void {
  if (value.length > 32 || !QUANTITY.test(value) || Number.parseFloat(value.replace(/^\+/, "")) <= 0) {
    throw new PaasError(
      "invalid_argument",
      `${field} "${printable(value)}" is not a positive Kubernetes quantity (e.g. 500m, 2, 4Gi)`,
    );
  }
}
