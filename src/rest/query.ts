import { ScalarType, type DescEnum, type DescField, type DescMethod } from "@bufbuild/protobuf";
import type { FieldError } from "./rest-errors.ts";

// Query parameters as gRPC transcoding reads them (google.api.HttpRule): on a route without a
// body, every request field the path does not bind may come from the query string, named by
// its proto name (page_size) or its JSON name (pageSize). Scalars, enums (by name, or number),
// and the well-known types written as JSON strings: Timestamp (RFC 3339) and Duration. A
// repeated field takes the parameter once per element. Unknown parameters are ignored, as
// unknown body fields are; a malformed value is a 422 naming the parameter, never its value.

const INT32_RANGE: Partial<Record<ScalarType, readonly [number, number]>> = {
  [ScalarType.INT32]: [-(2 ** 31), 2 ** 31 - 1],
  [ScalarType.SINT32]: [-(2 ** 31), 2 ** 31 - 1],
  [ScalarType.SFIXED32]: [-(2 ** 31), 2 ** 31 - 1],
  [ScalarType.UINT32]: [0, 2 ** 32 - 1],
  [ScalarType.FIXED32]: [0, 2 ** 32 - 1],
};

const INT64_RANGE: Partial<Record<ScalarType, readonly [bigint, bigint]>> = {
  [ScalarType.INT64]: [-(2n ** 63n), 2n ** 63n - 1n],
  [ScalarType.SINT64]: [-(2n ** 63n), 2n ** 63n - 1n],
  [ScalarType.SFIXED64]: [-(2n ** 63n), 2n ** 63n - 1n],
  [ScalarType.UINT64]: [0n, 2n ** 64n - 1n],
  [ScalarType.FIXED64]: [0n, 2n ** 64n - 1n],
};

const WELL_KNOWN = new Set(["google.protobuf.Timestamp", "google.protobuf.Duration"]);

function scalarSupported(scalar: ScalarType): boolean {
  return (
    scalar === ScalarType.STRING ||
    scalar === ScalarType.BOOL ||
    scalar === ScalarType.DOUBLE ||
    scalar === ScalarType.FLOAT ||
    scalar in INT32_RANGE ||
    scalar in INT64_RANGE
  );
}

/** assertQuerySupported fails at start for a query field the decoder cannot read (bytes, maps, other messages). */
export function assertQuerySupported(method: DescMethod, f: DescField): void {
  const ok =
    (f.fieldKind === "scalar" && scalarSupported(f.scalar)) ||
    f.fieldKind === "enum" ||
    (f.fieldKind === "list" && ((f.listKind === "scalar" && scalarSupported(f.scalar)) || f.listKind === "enum")) ||
    (f.fieldKind === "message" && WELL_KNOWN.has(f.message.typeName));
  if (!ok) throw new Error(`REST: ${method}: query field ${f.name} has a kind the REST decoder does not support`);
}

/** queryNamesOf maps both names of each field (proto and lowerCamel JSON) to the field. */
export function queryNamesOf(fields: readonly DescField[]): Map<string, DescField> {
  const names = new Map<string, DescField>();
  for (const f of fields) {
    names.set(f.name, f);
    names.set(f.jsonName, f);
  }
  return names;
}

/** QueryDecoded is the request fields read from the query string and the problems found. */
export interface QueryDecoded {
  init: Record<string, unknown>;
  errors: FieldError[];
}

/** decodeQuery reads the route's query fields from the query string. */
export function decodeQuery(fields: Map<string, DescField>, search: URLSearchParams): QueryDecoded {
  // Collected per field, whichever of its two names each parameter used.
  const given = new Map<DescField, { name: string; values: string[] }>();
  for (const [name, value] of search) {
    const field = fields.get(name);
    if (field === undefined) continue;
    const entry = given.get(field) ?? { name, values: [] };
    entry.values.push(value);
    given.set(field, entry);
  }
  const init: Record<string, unknown> = {};
  const errors: FieldError[] = [];
  for (const [field, { name, values }] of given) {
    const loc = ["query", name];
    if (field.fieldKind !== "list" && values.length > 1) {
      errors.push({ loc, msg: "Input should be a single value, not a repeated parameter", type: "single_value" });
      continue;
    }
    const decoded: unknown[] = [];
    values.forEach((raw, i) => {
      const one = decodeOne(field, raw);
      if ("error" in one)
        errors.push({ loc: field.fieldKind === "list" ? [...loc, i] : loc, msg: one.error, type: one.type });
      else decoded.push(one.value);
    });
    if (decoded.length === values.length) init[field.localName] = field.fieldKind === "list" ? decoded : decoded[0];
  }
  return { init, errors };
}

type Decoded = { value: unknown } | { error: string; type: string };

function decodeOne(field: DescField, raw: string): Decoded {
  switch (field.fieldKind) {
    case "scalar":
      return scalar(field.scalar, raw);
    case "enum":
      return enumValue(field.enum, raw);
    case "list":
      if (field.listKind === "scalar") return scalar(field.scalar, raw);
      if (field.listKind === "enum") return enumValue(field.enum, raw);
      break;
    case "message":
      if (field.message.typeName === "google.protobuf.Timestamp") return timestamp(raw);
      if (field.message.typeName === "google.protobuf.Duration") return duration(raw);
      break;
  }
  // buildRoutes refuses such fields at start; this is only a guard.
  return { error: "Field cannot be set through the query string", type: "unsupported" };
}

// pydantic's lax booleans.
const TRUE = new Set(["1", "on", "t", "true", "y", "yes"]);
const FALSE = new Set(["0", "off", "f", "false", "n", "no"]);

function scalar(type: ScalarType, raw: string): Decoded {
  if (type === ScalarType.STRING) return { value: raw };
  const s = raw.trim();
  if (type === ScalarType.BOOL) {
    const v = s.toLowerCase();
    if (TRUE.has(v)) return { value: true };
    if (FALSE.has(v)) return { value: false };
    return { error: "Input should be a valid boolean, unable to interpret input", type: "bool_parsing" };
  }
  const range32 = INT32_RANGE[type];
  if (range32) {
    if (!/^[-+]?\d{1,20}$/.test(s))
      return { error: "Input should be a valid integer, unable to parse string as an integer", type: "int_parsing" };
    const n = Number(s);
    if (n < range32[0] || n > range32[1])
      return { error: `Input should be between ${range32[0]} and ${range32[1]}`, type: "int_range" };
    return { value: n };
  }
  const range64 = INT64_RANGE[type];
  if (range64) {
    if (!/^[-+]?\d{1,40}$/.test(s))
      return { error: "Input should be a valid integer, unable to parse string as an integer", type: "int_parsing" };
    const n = BigInt(s);
    if (n < range64[0] || n > range64[1])
      return { error: `Input should be between ${range64[0]} and ${range64[1]}`, type: "int_range" };
    return { value: n };
  }
  // DOUBLE, FLOAT
  const n = s === "" ? Number.NaN : Number(s);
  if (!Number.isFinite(n))
    return { error: "Input should be a valid number, unable to parse string as a number", type: "float_parsing" };
  return { value: n };
}

function enumValue(e: DescEnum, raw: string): Decoded {
  const s = raw.trim();
  const byName = e.values.find((v) => v.name === s);
  if (byName) return { value: byName.number };
  if (/^-?\d{1,10}$/.test(s)) {
    const byNumber = e.values.find((v) => v.number === Number(s));
    if (byNumber) return { value: byNumber.number };
  }
  const names = e.values.map((v) => `'${v.name}'`);
  const list = names.length > 1 ? `${names.slice(0, -1).join(", ")} or ${names.at(-1)}` : names.join("");
  return { error: `Input should be ${list}`, type: "enum" };
}

// RFC 3339 date-time with a mandatory offset. A space before the offset's digits is a '+' that
// an unencoded query string turned into a space ("…T10:00:00+02:00" sent as is).
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|([-+ ])(\d{2}):(\d{2}))$/;
// The range of google.protobuf.Timestamp: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
const MIN_SECONDS = -62_135_596_800;
const MAX_SECONDS = 253_402_300_799;

function timestamp(raw: string): Decoded {
  const bad: Decoded = {
    error: "Input should be a valid RFC 3339 date-time with an offset, e.g. 2026-01-01T00:00:00Z",
    type: "datetime_parsing",
  };
  const m = RFC3339.exec(raw.trim());
  if (!m) return bad;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const fraction = m[7] ?? "";
  const sign = m[8] === "-" ? -1 : 1;
  const offsetHours = Number(m[9] ?? 0);
  const offsetMinutes = Number(m[10] ?? 0);
  const daysInMonth = new Date(Date.UTC(2000, month, 0)).getUTCDate() - (month === 2 && !isLeap(year) ? 1 : 0);
  if (
    month < 1 ||
    month > 12 ||
    day < 1 ||
    day > daysInMonth ||
    hour > 23 ||
    minute > 59 ||
    second > 59 ||
    offsetHours > 23 ||
    offsetMinutes > 59
  )
    return bad;
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, 0);
  const seconds = date.getTime() / 1000 - sign * (offsetHours * 3600 + offsetMinutes * 60);
  if (seconds < MIN_SECONDS || seconds > MAX_SECONDS)
    return { error: "Input should be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z", type: "datetime_range" };
  return { value: { seconds: BigInt(seconds), nanos: Number(fraction.padEnd(9, "0")) } };
}

function isLeap(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

// Seconds as the REST body takes `timeout` ("300", "1.5"), or proto3 JSON's "300s", "1.5s".
const DURATION = /^(\d{1,12})(?:\.(\d{1,9}))?s?$/;

function duration(raw: string): Decoded {
  const m = DURATION.exec(raw.trim());
  if (!m)
    return { error: "Input should be a non-negative number of seconds, e.g. 300 or 1.5s", type: "time_delta_parsing" };
  const seconds = BigInt(m[1]!);
  if (seconds > 315_576_000_000n)
    return { error: "Input should be at most 315576000000 seconds", type: "time_delta_range" };
  return { value: { seconds, nanos: Number((m[2] ?? "").padEnd(9, "0")) } };
}
