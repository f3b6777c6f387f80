/**
 * The REST contract's differences from the protos: the only hand-written part of the OpenAPI
 * document apart from prose.
 *
 * Everything else is derived from the descriptors: paths and methods from each RPC's
 * `google.api.http` rule, path parameters, request and response bodies from the messages, field
 * types and descriptions from the fields and their comments. The REST layer (src/rest/) serves the
 * old operator's JSON shapes, which differ from what gRPC transcoding of the protos gives in the
 * ways listed here and nowhere else:
 *
 * - field names are the proto names (snake_case), not proto-JSON's lowerCamelCase;
 * - some types render differently (REST_TYPES, REST_ENUMS);
 * - some responses are one field of the response message, and some answer 201 (REST_METHODS);
 * - some fields are always present or must be sent (REST_REQUIRED), which proto3 cannot say, and
 *   empty ones may be null (REST_NULLABLE);
 * - errors are {detail, error_type} (REST_ERROR_*), not Connect's {code, message};
 * - the plain health endpoints of src/server/http-routes.ts have no RPC at all (PLAIN_HTTP_PATHS).
 *
 * The REST layer states the same facts for serving (src/rest/routes.ts OVERRIDES, src/rest/shapes.ts);
 * a change to its shapes belongs here too, in the same change.
 */
import type { JsonObject } from "./json.ts";

/** RestMethodOverride changes how one RPC's google.api.http binding answers. */
export interface RestMethodOverride {
  /** HTTP status of success; 200 when absent. */
  successStatus?: number;
  /**
   * The response body is this field of the response message, as HttpRule.response_body would say
   * (setting `response_body` in the proto makes the entry unnecessary).
   */
  responseBody?: string;
  /** The response schema of one binding (by its path) that has a shape of its own, e.g. an older API's. */
  bindingSchemas?: Record<string, JsonObject>;
}

const nullableTime: JsonObject = { type: ["string", "null"], format: "date-time" };

/** JOB_SCHEMA: an operation as the ops API's job pollers read it (src/rest/shapes.ts restJob). */
const JOB_SCHEMA: JsonObject = {
  type: "object",
  description: "An operation in the ops API's job shape.",
  properties: {
    job_id: { type: "string", description: "The operation id." },
    type: {
      type: "string",
      description:
        "The operation's kind: install, upgrade, rollback, uninstall, recover, create-namespace, delete-namespace, scale-workload, restart-workload, delete-pod, delete-pvc, and pg-rebuild (RebuildStatefulSetMember).",
    },
    status: {
      type: "string",
      enum: ["pending", "running", "success", "failed"],
      description: "A cancelled operation is failed, with the reason in error.",
    },
    created_at: nullableTime,
    finished_at: nullableTime,
    params: {
      type: "object",
      additionalProperties: true,
      description: "The request's parameters; values only as their SHA-256.",
    },
    steps: {
      type: "array",
      items: {
        type: "object",
        properties: {
          name: { type: "string" },
          order: { type: "integer" },
          status: { type: "string", enum: ["pending", "running", "success", "failed"] },
          detail: { type: "string" },
          started_at: nullableTime,
          finished_at: nullableTime,
        },
        required: ["name", "order", "status", "detail", "started_at", "finished_at"],
      },
    },
    error: {
      type: ["object", "null"],
      properties: { code: { type: "string" }, message: { type: "string" }, reason: { type: "string" } },
    },
    namespace: { type: "string" },
    release: { type: "string" },
  },
  required: ["job_id", "type", "status", "created_at", "finished_at", "params", "steps"],
};

/** JOB_ACCEPTED_SCHEMA: the ops API's answer to a started job (src/rest/shapes.ts restJobAccepted). */
const JOB_ACCEPTED_SCHEMA: JsonObject = {
  type: "object",
  description: "The job was queued; follow it with GET /ops/jobs/{job_id}.",
  properties: {
    job_id: { type: "string", description: "The operation id." },
    status: { type: "string", enum: ["pending", "running", "success", "failed"] },
  },
  required: ["job_id", "status"],
};

/** REST_METHODS: per-RPC differences, keyed by the method's full name. */
export const REST_METHODS: Record<string, RestMethodOverride> = {
  // The old operator answered a created release with 201 and the bare release.
  "paas.v1.ReleaseService.InstallRelease": { successStatus: 201, responseBody: "release" },
  "paas.v1.ReleaseService.GetRelease": { responseBody: "release" },
  "paas.v1.ReleaseService.UpgradeRelease": { responseBody: "release" },
  "paas.v1.NamespaceService.CreateNamespace": { successStatus: 201 },
  "paas.v1.NamespaceService.GetNamespace": { responseBody: "namespace" },
  // Operations answer the operation itself; /ops/jobs/{id} answers it in the ops API's job shape.
  "paas.v1.OperationService.GetOperation": {
    responseBody: "operation",
    bindingSchemas: { "/ops/jobs/{id}": JOB_SCHEMA },
  },
  "paas.v1.OperationService.WaitOperation": { responseBody: "operation" },
  "paas.v1.OperationService.CancelOperation": { responseBody: "operation" },
  // The ops API starts the rebuild as a job: 202 and {job_id, status} at once.
  "paas.v1.WorkloadService.RebuildStatefulSetMember": {
    successStatus: 202,
    bindingSchemas: { "/ops/jobs/pg-rebuild": JOB_ACCEPTED_SCHEMA },
  },
};

/**
 * REST_REQUIRED: fields the REST layer always writes (messages in responses) or requires (request
 * bodies), keyed by message name. Proto3 has no required fields, so the Connect schemas have none.
 */
export const REST_REQUIRED: Record<string, string[]> = {
  "paas.v1.Release": [
    "name",
    "namespace",
    "revision",
    "status",
    "chart",
    "app_version",
    "updated",
    "description",
    "values",
  ],
  "paas.v1.Revision": ["revision", "updated", "status", "chart", "app_version", "description"],
  "paas.v1.PodStatus": ["name", "phase", "ready", "restarts", "age"],
  "paas.v1.InstallReleaseRequest": ["namespace", "name", "chart"],
  "paas.v1.CreateNamespaceRequest": ["name"],
  "paas.v1.ScaleWorkloadRequest": ["replicas"],
  "paas.v1.RebuildStatefulSetMemberRequest": ["namespace", "statefulset", "ordinal"],
};

/** REST_TYPES: message types the REST layer renders as something else than proto-JSON does. */
export const REST_TYPES: Record<string, JsonObject> = {
  // An absent timestamp is null, as pydantic's Optional[datetime] gave.
  "google.protobuf.Timestamp": {
    type: ["string", "null"],
    format: "date-time",
    description: "ISO 8601 in UTC, e.g. `2025-01-02T03:04:05.000Z`; null when unknown.",
  },
  // The old operator took Helm's timeout as a number of seconds; proto-JSON would say "300s".
  "google.protobuf.Duration": { type: "number", minimum: 0, description: "Seconds, e.g. 300.", examples: [300] },
};

/**
 * REST_NULLABLE: fields the REST layer writes as null when empty, keyed by message name. Fields
 * of a message type (a release, a namespace) are always null when absent, and need no entry.
 */
export const REST_NULLABLE: Record<string, string[]> = {
  "paas.v1.GetReleaseStatusResponse": ["pod_retrieval_error"],
};

/** RestEnum renders an enum's values as the REST layer's strings. */
export interface RestEnum {
  /** The REST string of a value name, or undefined when REST never uses the value. */
  value: (name: string) => string | undefined;
  description: string;
}

/** REST_ENUMS: enums whose REST strings are not their proto names, keyed by enum name. */
export const REST_ENUMS: Record<string, RestEnum> = {
  // Helm's own status strings, as `helm status` prints them: RELEASE_STATUS_PENDING_INSTALL is
  // "pending-install". UNSPECIFIED never reaches a caller.
  "paas.v1.ReleaseStatus": {
    value: (name) =>
      name === "RELEASE_STATUS_UNSPECIFIED"
        ? undefined
        : name
            .replace(/^RELEASE_STATUS_/, "")
            .toLowerCase()
            .replaceAll("_", "-"),
    description: "The status Helm records for a release revision, as Helm writes it.",
  },
};

/** REST_ERROR_SCHEMA is the body of every REST error. */
export const REST_ERROR_SCHEMA: JsonObject = {
  type: "object",
  description: "A REST error.",
  properties: {
    detail: { type: "string", description: "Human-readable reason; never Helm's raw output." },
    error_type: {
      type: "string",
      description:
        "Machine-readable kind of error: `validation_error`, `unprocessable_entity`, `unauthorized`, `forbidden`, `not_found`, `conflict`, `timeout`, ….",
      examples: ["not_found"],
    },
    request_id: { type: "string", description: "The request's id in the server's log." },
    errors: {
      type: "array",
      description: "With 422: one entry per problem with the body, as pydantic reported them.",
      items: {
        type: "object",
        properties: {
          loc: {
            type: "array",
            items: { type: ["string", "integer"] },
            description: 'Where, e.g. `["body", "name"]`.',
          },
          msg: { type: "string" },
          type: { type: "string" },
        },
        required: ["loc", "msg", "type"],
      },
    },
  },
  required: ["detail", "error_type"],
};

/** REST_ERROR_STATUSES: the HTTP statuses of REST errors and when they happen. */
export const REST_ERROR_STATUSES: Record<string, string> = {
  "400":
    "Malformed request: bad namespace or release name, a namespace in the body outside the prefix, bad chart reference, no deployed revision.",
  "401": "Missing or wrong API key.",
  "403":
    "The namespace in the path does not start with the server's namespace prefix or is outside the API key's scope, the key lacks the verb, or a quota is exceeded.",
  "404": "Release, namespace or route not found.",
  "405": "Method not allowed on this path.",
  "409":
    "Release name in use, another operation on the release in progress (error_type conflict), or the first request with this Idempotency-Key still running (idempotency_key_in_use).",
  "413": "Request body larger than the server's limit, or values over the size, depth or key-count limits.",
  "422":
    "Request body or parameters fail validation (wrong type, missing field), or an Idempotency-Key reused with a different request (idempotency_key_reused).",
  "500": "Internal error.",
  "503": "Shutting down, or the Kubernetes API is unreachable.",
  "504": "Helm's timeout ran out.",
};

/** restErrorStatuses: the error statuses an operation lists, by its method and whether it takes a body. */
export function restErrorStatuses(method: string, hasBody: boolean): string[] {
  return Object.keys(REST_ERROR_STATUSES).filter((status) => {
    if (status === "409") return method !== "get";
    if (status === "413") return hasBody;
    return true;
  });
}

const healthReasons: JsonObject = {
  type: "array",
  description: "Why the service is not serving; present only then.",
  items: { type: "string", enum: ["shutting down", "helm unavailable", "kubernetes API unreachable"] },
};

function plainJson(description: string, schema: JsonObject): JsonObject {
  return { description, content: { "application/json": { schema } } };
}

/** PLAIN_HTTP_PATHS: the key-less probes of src/server/http-routes.ts, which no RPC describes. */
export const PLAIN_HTTP_PATHS: Record<string, JsonObject> = {
  "/health": {
    get: {
      tags: ["Health"],
      operationId: "health",
      summary: "The old operator's health check.",
      description: "Always 200; `status` says whether Helm and the Kubernetes API are reachable.",
      security: [],
      responses: {
        "200": plainJson("Health of the service.", {
          type: "object",
          properties: {
            status: { type: "string", enum: ["healthy", "degraded"] },
            timestamp: { type: "string", format: "date-time" },
            helm_version: {
              type: "string",
              description: "Version of the Helm binary, e.g. `v4.3.1`; empty before the first check.",
            },
            reasons: healthReasons,
          },
          required: ["status", "timestamp", "helm_version"],
        }),
      },
    },
  },
  "/healthz": {
    get: {
      tags: ["Health"],
      operationId: "healthz",
      summary: "Liveness: the process answers.",
      security: [],
      responses: {
        "200": plainJson("The process is alive.", {
          type: "object",
          properties: { status: { const: "ok" } },
          required: ["status"],
        }),
      },
    },
  },
  "/readyz": {
    get: {
      tags: ["Health"],
      operationId: "readyz",
      summary: "Readiness: Helm and the Kubernetes API are reachable and the process is not draining.",
      security: [],
      responses: {
        "200": plainJson("Ready.", {
          type: "object",
          properties: { status: { const: "ready" } },
          required: ["status"],
        }),
        "503": plainJson("Not ready.", {
          type: "object",
          properties: { status: { const: "not ready" }, reasons: healthReasons },
          required: ["status", "reasons"],
        }),
      },
    },
  },
};

// The ops API's names of the same probes (src/server/http-routes.ts).
PLAIN_HTTP_PATHS["/health/live"] = {
  get: {
    ...(PLAIN_HTTP_PATHS["/healthz"]!.get as JsonObject),
    operationId: "healthLive",
    summary: "Liveness (the ops API's path): the process answers.",
  },
};
PLAIN_HTTP_PATHS["/health/ready"] = {
  get: {
    ...(PLAIN_HTTP_PATHS["/readyz"]!.get as JsonObject),
    operationId: "healthReady",
    summary: "Readiness (the ops API's path), as /readyz.",
  },
};
