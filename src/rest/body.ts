import { create, ScalarType, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";
import type { JsonObject, JsonValue } from "../domain/release.ts";
import { declaredLength, drainBody, type BodyLimits, type BodyRequest } from "../server/body-limit.ts";
import { REST_ONLY, RestError, type FieldError } from "./rest-errors.ts";
import { decodeQuery } from "./query.ts";
import type { RestRoute } from "./routes.ts";

/**
 * readBody reads a request body of at most `limits.maxBytes`. Past the limit the rest is drained
 * (src/server/body-limit.ts) and it rejects with a 413 whose `close` says whether the connection
 * must be closed (the rest of the body unread).
 */
export function readBody(req: BodyRequest, limits: BodyLimits): Promise<Buffer> {
  const { maxBytes } = limits;
  const tooLarge = (close: boolean) =>
    new RestError(
      REST_ONLY.payloadTooLarge,
      `Request body larger than ${maxBytes} bytes`,
      close ? { headers: { connection: "close" } } : {},
    );
  const gone = () => new RestError(REST_ONLY.callerGone, "The caller went away while sending the body");
  const overLimit = (read: number) =>
    drainBody(req, limits, read).then((how) => {
      throw how === "gone" ? gone() : tooLarge(how === "cut");
    });
  if (declaredLength(req) > maxBytes) return overLimit(0);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (settle: () => void) => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onGone);
      req.off("close", onGone);
      settle();
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) return finish(() => overLimit(size).catch(reject));
      chunks.push(chunk);
    };
    const onEnd = () => finish(() => resolve(Buffer.concat(chunks, size)));
    const onGone = () => finish(() => reject(gone()));
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onGone);
    req.on("close", onGone);
  });
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** parseJsonBody parses a body as a JSON object; an empty body is an empty object. */
export function parseJsonBody(bytes: Uint8Array): JsonObject {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw unprocessable("Request body is not valid UTF-8", [
      { loc: ["body"], msg: "invalid UTF-8", type: "json_invalid" },
    ]);
  }
  if (text.trim() === "") return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const msg = err instanceof SyntaxError ? err.message : "invalid JSON";
    throw unprocessable(`Request body is not valid JSON: ${msg.slice(0, 200)}`, [
      { loc: ["body"], msg: "JSON decode error", type: "json_invalid" },
    ]);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw unprocessable("Request body must be a JSON object", [
      { loc: ["body"], msg: "Input should be a valid dictionary", type: "dict_type" },
    ]);
  }
  return value as JsonObject;
}

/**
 * decodeRequest builds the RPC's request message from the path variables, the JSON body and,
 * on routes without a body, the query string (src/rest/query.ts). Body keys are the proto
 * field names (snake_case, as the old operator's pydantic models); keys and query parameters
 * that name no field are ignored, as pydantic did; null means absent. A value of the wrong
 * type, or a required field that is missing, is a 422 that names every bad field. Path
 * variables win over query parameters of the same name. Values are never echoed back: they
 * may hold secrets.
 */
export function decodeRequest(
  route: RestRoute,
  params: Map<DescField, string>,
  body: JsonObject,
  query: URLSearchParams = new URLSearchParams(),
): Message {
  const schema: DescMessage = route.method.input;
  const fromQuery = decodeQuery(route.queryFields, query);
  const init: Record<string, unknown> = { ...fromQuery.init };
  const errors: FieldError[] = [];
  for (const [field, value] of params) init[field.localName] = value;
  for (const field of route.bodyFields) {
    const raw = Object.hasOwn(body, field.name) ? body[field.name] : undefined;
    if (raw === undefined || raw === null) {
      if (route.required.has(field.name))
        errors.push({ loc: ["body", field.name], msg: "Field required", type: "missing" });
      continue;
    }
    const decoded = decodeField(field, raw);
    if ("error" in decoded) errors.push({ loc: ["body", field.name], msg: decoded.error, type: decoded.type });
    else init[field.localName] = decoded.value;
  }
  const problems = (list: FieldError[]) => list.map((e) => `${e.loc.slice(1).join(".")}: ${e.msg}`).join("; ");
  if (fromQuery.errors.length > 0) {
    const detail = [
      `Invalid query parameters: ${problems(fromQuery.errors)}`,
      ...(errors.length > 0 ? [`invalid request body: ${problems(errors)}`] : []),
    ].join("; ");
    throw unprocessable(detail, [...fromQuery.errors, ...errors]);
  }
  if (errors.length > 0) throw unprocessable(`Invalid request body: ${problems(errors)}`, errors);
  return create(schema, init);
}

type Decoded = { value: unknown } | { error: string; type: string };

const INT32: Partial<Record<ScalarType, [number, number]>> = {
  [ScalarType.INT32]: [-(2 ** 31), 2 ** 31 - 1],
  [ScalarType.SINT32]: [-(2 ** 31), 2 ** 31 - 1],
  [ScalarType.SFIXED32]: [-(2 ** 31), 2 ** 31 - 1],
  [ScalarType.UINT32]: [0, 2 ** 32 - 1],
  [ScalarType.FIXED32]: [0, 2 ** 32 - 1],
};

function decodeField(field: DescField, raw: JsonValue): Decoded {
  if (field.fieldKind === "scalar") {
    if (field.scalar === ScalarType.STRING)
      return typeof raw === "string"
        ? { value: raw }
        : { error: "Input should be a valid string", type: "string_type" };
    if (field.scalar === ScalarType.BOOL)
      return typeof raw === "boolean"
        ? { value: raw }
        : { error: "Input should be a valid boolean", type: "bool_type" };
    const range = INT32[field.scalar];
    if (range) {
      // Like pydantic (and proto3 JSON): an integer, or a string holding one.
      const n =
        typeof raw === "number"
          ? raw
          : typeof raw === "string" && /^-?\d{1,10}$/.test(raw.trim())
            ? Number(raw.trim())
            : Number.NaN;
      if (!Number.isInteger(n)) return { error: "Input should be a valid integer", type: "int_type" };
      if (n < range[0] || n > range[1])
        return { error: `Input should be between ${range[0]} and ${range[1]}`, type: "int_range" };
      return { value: n };
    }
  }
  if (field.fieldKind === "enum") {
    // An enum value by name, with or without its prefix ("STATEFULSET", "WORKLOAD_KIND_STATEFULSET"), or its number.
    const values = field.enum.values;
    const found =
      typeof raw === "number"
        ? values.find((v) => v.number === raw)
        : typeof raw === "string"
          ? values.find((v) => v.name === raw || v.localName === raw.toUpperCase())
          : undefined;
    if (!found || found.number === 0)
      return {
        error: `Input should be one of ${values
          .filter((v) => v.number !== 0)
          .map((v) => `'${v.localName}'`)
          .join(", ")}`,
        type: "enum",
      };
    return { value: found.number };
  }
  if (field.fieldKind === "message") {
    switch (field.message.typeName) {
      case "google.protobuf.Struct":
        return typeof raw === "object" && !Array.isArray(raw)
          ? { value: raw }
          : { error: "Input should be a valid dictionary", type: "dict_type" };
      case "google.protobuf.Duration":
        return duration(raw);
    }
  }
  // buildRoutes refuses such fields at start; this is only a guard.
  return { error: "Field cannot be set through REST", type: "unsupported" };
}

/** duration reads seconds as a JSON number (or a string holding one), as the old operator's `timeout`. */
function duration(raw: JsonValue): Decoded {
  const s =
    typeof raw === "number"
      ? raw
      : typeof raw === "string" && /^\s*\d+(\.\d+)?\s*$/.test(raw)
        ? Number(raw)
        : Number.NaN;
  if (!Number.isFinite(s)) return { error: "Input should be a number of seconds", type: "float_type" };
  if (s < 0 || s > 315_576_000_000)
    return { error: "Input should be a non-negative number of seconds", type: "greater_than_equal" };
  const seconds = Math.trunc(s);
  return { value: { seconds: BigInt(seconds), nanos: Math.round((s - seconds) * 1e9) } };
}

function unprocessable(detail: string, errors: FieldError[]): RestError {
  return new RestError(REST_ONLY.unprocessable, detail, { errors });
}
