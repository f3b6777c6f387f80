import type { DescField, DescFile, DescMessage, DescMethod, DescService, Registry } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { describe, summarize } from "./comments.ts";
import { connectDialect, restDialect, wellKnownSchema } from "./dialects.ts";
import { httpBindings, type HttpBinding } from "./http-rule.ts";
import type { JsonObject } from "./json.ts";
import {
  PLAIN_HTTP_PATHS,
  REST_ENUMS,
  REST_ERROR_SCHEMA,
  REST_ERROR_STATUSES,
  REST_METHODS,
  REST_NULLABLE,
  REST_REQUIRED,
  restErrorStatuses,
} from "./rest-contract.ts";
import { SchemaSet } from "./schema-set.ts";

/** TITLE is the document's info.title. */
export const TITLE = "PaaS Operator API";

/** CONNECT_ERROR_SCHEMA is the body of a Connect unary error (connectrpc.com/docs/protocol). */
const CONNECT_ERROR_SCHEMA: JsonObject = {
  type: "object",
  description: "A Connect error. The HTTP status follows from the code.",
  properties: {
    code: {
      type: "string",
      enum: [
        "canceled",
        "unknown",
        "invalid_argument",
        "deadline_exceeded",
        "not_found",
        "already_exists",
        "permission_denied",
        "resource_exhausted",
        "failed_precondition",
        "aborted",
        "out_of_range",
        "unimplemented",
        "internal",
        "unavailable",
        "data_loss",
        "unauthenticated",
      ],
    },
    message: { type: "string", description: "Human-readable reason; never Helm's raw output." },
    details: {
      type: "array",
      items: {
        type: "object",
        properties: { type: { type: "string" }, value: { type: "string", contentEncoding: "base64" }, debug: {} },
        required: ["type", "value"],
      },
    },
  },
  required: ["code"],
};

const CONNECT_ERROR_DESCRIPTION = [
  "A Connect error; the HTTP status follows from the code:",
  "`invalid_argument` and `failed_precondition` 400, `unauthenticated` 401, `permission_denied` 403, `not_found` 404,",
  "`already_exists` and `aborted` 409, `resource_exhausted` 429, `unavailable` 503, `deadline_exceeded` 504, others 500.",
].join(" ");

const DESCRIPTION = `Installs, upgrades, rolls back, uninstalls and inspects the Helm releases of tenants, and manages
their namespaces. Generated from the protos in \`proto/paas/v1/\` by \`scripts/openapi/\`; do not edit.

One port serves every protocol:

- **REST** (the tags ending in "(REST)"): the old operator's JSON API. Field names are snake_case,
  \`status\` is Helm's lowercase string, \`timeout\` is seconds, errors are \`{"detail", "error_type"}\`.
- **Connect** (the tags named after the services): \`POST /<service>/<method>\` with a JSON body in proto3
  JSON: lowerCamelCase field names (snake_case is accepted too), 64-bit integers as strings, enums by
  name, timestamps in RFC 3339, durations like \`"300s"\`. Fields at their default value are left out of
  responses. Errors are \`{"code", "message"}\`. The same paths speak gRPC and gRPC-Web
  (\`application/grpc\`, \`application/grpc-web\`) and Connect's binary \`application/proto\`, which
  OpenAPI cannot describe.
- \`/health\`, \`/healthz\`, \`/readyz\`: probes, no key.

Every call except the probes and this documentation needs the header \`X-API-Key\`. Namespaces must
start with the server's prefix (default \`paas-ws-\`).`;

/**
 * buildDocument derives the OpenAPI 3.1 document of the services in `files` from their descriptors:
 * a Connect operation per RPC, a REST operation per google.api.http binding (shaped by
 * rest-contract.ts), and the plain probes.
 */
export function buildDocument(registry: Registry, files: DescFile[]): JsonObject {
  const schemas: Record<string, JsonObject> = {};
  const rest = new SchemaSet(restDialect, schemas);
  const connect = new SchemaSet(connectDialect, schemas);
  const services = files.flatMap((f) => f.services);
  const packages = [...new Set(files.map((f) => f.proto.package))];
  assertContractNamesExist(registry, packages);

  const paths: Record<string, JsonObject> = structuredClone(PLAIN_HTTP_PATHS);
  const restTags: JsonObject[] = [];
  for (const service of services) {
    const bound = service.methods.flatMap((m) => httpBindings(registry, m).map((b, i) => [m, b, i] as const));
    if (bound.length === 0) continue;
    restTags.push(tag(`${service.name} (REST)`, service));
    for (const [method, binding, index] of bound) {
      const item = (paths[binding.path] ??= {});
      if (binding.method in item)
        throw new Error(`openapi: ${binding.method.toUpperCase()} ${binding.path} is bound twice`);
      item[binding.method] = restOperation(rest, method, binding, index);
    }
  }
  for (const service of services) {
    for (const method of service.methods) {
      paths[`/${service.typeName}/${method.name}`] = { post: connectOperation(connect, method) };
    }
  }

  const restErrors: JsonObject = {};
  for (const [status, description] of Object.entries(REST_ERROR_STATUSES)) {
    restErrors[`rest.Error${status}`] = {
      description,
      content: { "application/json": { schema: { $ref: "#/components/schemas/rest.Error" } } },
    };
  }
  for (const [name, schema] of [
    ["rest.Error", REST_ERROR_SCHEMA],
    ["connect.Error", CONNECT_ERROR_SCHEMA],
  ] as const) {
    if (name in schemas) throw new Error(`openapi: a proto message takes the component name ${name}`);
    schemas[name] = schema;
  }

  return {
    openapi: "3.1.0",
    info: {
      title: TITLE,
      // The API's version is its proto package's: paas.v1 → v1.
      version: packages.map((p) => p.split(".").pop()).join(", "),
      description: DESCRIPTION,
    },
    tags: [
      { name: "Health", description: "Probes of the service; no API key." },
      ...restTags,
      ...services.map((s) => tag(s.typeName, s, "Connect protocol")),
    ],
    paths,
    components: {
      schemas: sortKeys(schemas),
      responses: {
        ...restErrors,
        "connect.Error": {
          description: CONNECT_ERROR_DESCRIPTION,
          content: { "application/json": { schema: { $ref: "#/components/schemas/connect.Error" } } },
        },
      },
      securitySchemes: {
        ApiKey: {
          type: "apiKey",
          in: "header",
          name: "X-API-Key",
          description: "One of the server's API keys (`API_KEY`, `API_KEY_FILE`).",
        },
      },
    },
    security: [{ ApiKey: [] }],
  };
}

/**
 * assertContractNamesExist fails on an entry of rest-contract.ts that names an RPC, message, field
 * or enum of a documented package that does not exist: a rename in the protos must not leave an
 * override silently unused.
 */
function assertContractNamesExist(registry: Registry, packages: string[]): void {
  const ours = (name: string) => packages.some((p) => name.startsWith(`${p}.`));
  for (const name of Object.keys(REST_METHODS).filter(ours)) {
    const service = registry.getService(name.slice(0, name.lastIndexOf(".")));
    if (!service?.methods.some((m) => m.name === name.slice(name.lastIndexOf(".") + 1)))
      throw new Error(`openapi: rest-contract.ts names the unknown RPC ${name}`);
  }
  for (const [message, fields] of [...Object.entries(REST_REQUIRED), ...Object.entries(REST_NULLABLE)].filter(([m]) =>
    ours(m),
  )) {
    const desc = registry.getMessage(message);
    if (desc === undefined) throw new Error(`openapi: rest-contract.ts names the unknown message ${message}`);
    for (const f of fields)
      if (!desc.fields.some((d) => d.name === f))
        throw new Error(`openapi: rest-contract.ts names the unknown field ${message}.${f}`);
  }
  for (const name of Object.keys(REST_ENUMS).filter(ours)) {
    if (registry.getEnum(name) === undefined)
      throw new Error(`openapi: rest-contract.ts names the unknown enum ${name}`);
  }
}

function tag(name: string, service: DescService, prefix?: string): JsonObject {
  const text = describe(service);
  const description = [prefix, text].filter((s) => s !== undefined).join(": ");
  return description === "" ? { name } : { name, description };
}

/** restOperation is one google.api.http binding of an RPC, in the REST layer's JSON. */
function restOperation(schemas: SchemaSet, method: DescMethod, binding: HttpBinding, index: number): JsonObject {
  const fullName = `${method.parent.typeName}.${method.name}`;
  if (method.methodKind !== "unary")
    throw new Error(`openapi: ${fullName} is ${method.methodKind}; only unary RPCs have REST bindings`);
  const override = REST_METHODS[fullName] ?? {};
  const input = method.input;
  const description = describe(method);
  const pathFields = binding.pathFields.map((p) => fieldAt(input, p));
  const topLevelPathFields = binding.pathFields.filter((p) => !p.includes("."));

  const parameters: JsonObject[] = binding.pathFields.map((p, i) => ({
    name: p,
    in: "path",
    required: true,
    ...parameterSchema(schemas, pathFields[i]),
  }));
  let requestBody: JsonObject | undefined;
  if (binding.body === "*") {
    requestBody = {
      required: true,
      content: { "application/json": { schema: bodySchema(schemas, input, { omit: topLevelPathFields }) } },
    };
  } else if (binding.body !== "") {
    requestBody = {
      required: true,
      content: { "application/json": { schema: schemas.field(fieldAt(input, binding.body)) } },
    };
  }
  if (binding.body !== "*") {
    // gRPC transcoding: fields in neither the path nor the body are query parameters.
    for (const field of input.fields) {
      if (topLevelPathFields.includes(field.name) || field.name === binding.body) continue;
      // A well-known type written as a JSON string (Timestamp, Duration) is a query parameter too.
      const stringLike = field.fieldKind === "message" && wellKnownSchema(field.message)?.type === "string";
      if (
        !stringLike &&
        (field.fieldKind === "message" ||
          field.fieldKind === "map" ||
          (field.fieldKind === "list" && field.listKind === "message"))
      ) {
        throw new Error(`openapi: ${fullName}: query parameter ${field.name} of a message type is not supported`);
      }
      parameters.push({ name: field.name, in: "query", ...parameterSchema(schemas, field) });
    }
  }

  const responseBody = override.responseBody ?? binding.responseBody;
  const responseSchema =
    override.bindingSchemas?.[binding.path] ??
    (responseBody !== ""
      ? schemas.field(fieldAt(method.output, responseBody), { nullable: false })
      : schemas.ref(method.output));
  const success = String(override.successStatus ?? 200);
  const responses: JsonObject = {
    [success]: {
      description: success === "201" ? "Created." : "OK.",
      content: { "application/json": { schema: responseSchema } },
    },
  };
  for (const status of restErrorStatuses(binding.method, requestBody !== undefined)) {
    responses[status] = { $ref: `#/components/responses/rest.Error${status}` };
  }

  return {
    tags: [`${method.parent.name} (REST)`],
    operationId: index === 0 ? method.name : `${method.name}_${index}`,
    ...summaryAndDescription(description),
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(requestBody !== undefined ? { requestBody } : {}),
    responses,
  };
}

/** connectOperation is an RPC over the Connect protocol: unary as JSON, server streaming as enveloped JSON. */
function connectOperation(schemas: SchemaSet, method: DescMethod): JsonObject {
  const description = describe(method);
  const notes: string[] = [];
  if (method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS) notes.push("Has no side effects.");
  if (method.idempotency === MethodOptions_IdempotencyLevel.IDEMPOTENT) notes.push("Idempotent.");
  const common = {
    tags: [method.parent.typeName],
    operationId: `${method.parent.typeName}.${method.name}`,
  };
  if (method.methodKind === "unary") {
    return {
      ...common,
      ...summaryAndDescription([description, ...notes].filter((s) => s !== undefined).join("\n\n"), description),
      requestBody: { required: true, content: { "application/json": { schema: schemas.ref(method.input) } } },
      responses: {
        "200": { description: "OK.", content: { "application/json": { schema: schemas.ref(method.output) } } },
        default: { $ref: "#/components/responses/connect.Error" },
      },
    };
  }
  if (method.methodKind !== "server_streaming")
    throw new Error(`openapi: ${method.methodKind} RPC ${method.name} is not supported`);
  const streaming = [
    "**Server streaming**: not callable from this page. Every message in both directions is an envelope:",
    "one flags byte, a 4-byte big-endian length, then the JSON message shown here. The request is one",
    "envelope; the response is one envelope per message, then an end-of-stream envelope (flags `0x02`)",
    'holding `{}` or `{"error": {"code", "message"}}`. gRPC and gRPC-Web clients get the same stream.',
  ].join(" ");
  return {
    ...common,
    ...summaryAndDescription(
      [description, streaming, ...notes].filter((s) => s !== undefined).join("\n\n"),
      description,
    ),
    "x-connect-stream-type": "server",
    requestBody: { required: true, content: { "application/connect+json": { schema: schemas.ref(method.input) } } },
    responses: {
      "200": {
        description: "A stream of enveloped messages.",
        content: { "application/connect+json": { schema: schemas.ref(method.output) } },
      },
      // Errors of a Connect stream come in its end-of-stream envelope with HTTP 200; other
      // statuses are protocol errors (a wrong content type, say).
      default: { description: "A protocol error; errors of the call itself end the stream with HTTP 200." },
    },
  };
}

/**
 * summaryAndDescription: the summary is the description's first sentence (of `from`, by default the
 * description itself); the description is left out when it would only repeat the summary.
 */
function summaryAndDescription(description: string | undefined, from = description): JsonObject {
  const summary = summarize(from);
  const out: JsonObject = {};
  if (summary !== undefined) out.summary = summary;
  if (description !== undefined && description !== "" && description.replace(/\s+/g, " ") !== summary)
    out.description = description;
  return out;
}

/** bodySchema is a message as a REST body: its component when whole, else an inline object without the path fields. */
function bodySchema(schemas: SchemaSet, message: DescMessage, options: { omit: string[] }): JsonObject {
  return options.omit.length === 0 ? schemas.ref(message) : schemas.object(message, options);
}

function parameterSchema(schemas: SchemaSet, field: DescField): JsonObject {
  const { description, ...schema } = schemas.field(field);
  return { ...(description !== undefined ? { description } : {}), schema };
}

function fieldAt(message: DescMessage, path: string): DescField {
  let current = message;
  const parts = path.split(".");
  for (const [i, part] of parts.entries()) {
    const field = current.fields.find((f) => f.name === part);
    if (field === undefined) throw new Error(`openapi: ${message.typeName} has no field ${path}`);
    if (i === parts.length - 1) return field;
    if (field.fieldKind !== "message")
      throw new Error(`openapi: ${path} of ${message.typeName} is not a message field`);
    current = field.message;
  }
  throw new Error(`openapi: empty field path in ${message.typeName}`);
}

function sortKeys<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
