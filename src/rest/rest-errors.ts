import { Code, ConnectError } from "@connectrpc/connect";
import { reasonOf, type ErrorReason } from "../errors.ts";

/**
 * RestStatus is what a REST caller sees for one failure: the HTTP status and the
 * `error_type` of the JSON body ({detail, error_type}).
 */
export interface RestStatus {
  status: number;
  errorType: string;
}

/**
 * The one table that turns gRPC codes into the old operator's REST answers. The codes
 * themselves are chosen in src/errors.ts (domain kinds → codes); this only renders them.
 *
 * `inBody` is the status when the request named its namespace in the JSON body rather than
 * in the path (POST /api/releases, POST /api/namespaces): the old operator validated the body
 * and answered 400 for a namespace outside the prefix there, 403 on /api/releases/{namespace}/….
 */
export const REST_STATUS_BY_CODE: Record<Code, RestStatus & { inBody?: RestStatus }> = {
  [Code.InvalidArgument]: { status: 400, errorType: "validation_error" },
  [Code.OutOfRange]: { status: 400, errorType: "validation_error" },
  // The request is well-formed but cannot apply as things are: no recorded chart (pass
  // `chart`), no previous revision, chart repository unreachable, namespace being deleted.
  // 400 as in the Connect protocol and Google's HTTP mapping: the caller must change something.
  [Code.FailedPrecondition]: { status: 400, errorType: "failed_precondition" },
  [Code.Unauthenticated]: { status: 401, errorType: "unauthorized" },
  [Code.PermissionDenied]: {
    status: 403,
    errorType: "forbidden",
    inBody: { status: 400, errorType: "validation_error" },
  },
  // Only a ResourceQuota refusal yields this here (REST bodies are size-checked before any
  // call). Kubernetes answers 403 for an exceeded quota; 429 would invite blind retries.
  [Code.ResourceExhausted]: { status: 403, errorType: "quota_exceeded" },
  [Code.NotFound]: { status: 404, errorType: "not_found" },
  // Release name still in use.
  [Code.AlreadyExists]: { status: 409, errorType: "conflict" },
  // Another operation on the release is in progress: retry later.
  [Code.Aborted]: { status: 409, errorType: "conflict" },
  // The caller went away; nobody reads this (nginx's 499).
  [Code.Canceled]: { status: 499, errorType: "cancelled" },
  [Code.Unknown]: { status: 500, errorType: "internal_error" },
  [Code.Internal]: { status: 500, errorType: "internal_error" },
  [Code.DataLoss]: { status: 500, errorType: "internal_error" },
  [Code.Unimplemented]: { status: 501, errorType: "not_implemented" },
  // Shutting down, Kubernetes API unreachable or throttling: retry, possibly elsewhere.
  [Code.Unavailable]: { status: 503, errorType: "service_unavailable" },
  // helm's --timeout ran out (the release may be left pending or failed).
  [Code.DeadlineExceeded]: { status: 504, errorType: "timeout" },
};

/**
 * Statuses chosen by an ErrorInfo reason (src/errors.ts) where one gRPC code covers cases a
 * REST caller must tell apart; they win over REST_STATUS_BY_CODE.
 */
export const REST_STATUS_BY_REASON: Readonly<Record<ErrorReason, RestStatus>> = {
  // Values over the size, depth or key limits: the body is too large, unlike a quota refusal.
  VALUES_TOO_LARGE: { status: 413, errorType: "payload_too_large" },
  // Same Idempotency-Key, different request (as in the IETF Idempotency-Key draft).
  IDEMPOTENCY_KEY_REUSED: { status: 422, errorType: "idempotency_key_reused" },
  // The first request with this key is still running: retry later for its result.
  IDEMPOTENCY_KEY_IN_USE: { status: 409, errorType: "idempotency_key_in_use" },
  // The replica running the operation stopped before it finished: retry.
  REPLICA_LOST: { status: 503, errorType: "service_unavailable" },
  // CancelOperation stopped the operation a synchronous call was waiting for.
  OPERATION_CANCELLED: { status: 409, errorType: "cancelled" },
  // The chart ships CRDs (crds/), which a tenant cannot install: the chart, not the request, must change.
  CHART_HAS_CRDS: { status: 400, errorType: "chart_has_crds" },
};

/** Failures the REST layer finds itself, before any RPC runs. */
export const REST_ONLY = {
  noRoute: { status: 404, errorType: "not_found" },
  methodNotAllowed: { status: 405, errorType: "method_not_allowed" },
  badPath: { status: 400, errorType: "validation_error" },
  payloadTooLarge: { status: 413, errorType: "payload_too_large" },
  // Malformed JSON, a body that is not an object, a wrong type, a missing required field:
  // what FastAPI/pydantic answered with 422.
  unprocessable: { status: 422, errorType: "unprocessable_entity" },
  // The caller disconnected before its body arrived; nobody reads the answer.
  callerGone: { status: 499, errorType: "cancelled" },
} as const satisfies Record<string, RestStatus>;

/** restStatusOf renders a ConnectError's code; `inBody` selects the body-namespace variant. */
export function restStatusOf(code: Code, inBody: boolean): RestStatus {
  const row = REST_STATUS_BY_CODE[code] ?? REST_STATUS_BY_CODE[Code.Internal];
  return inBody && row.inBody ? row.inBody : { status: row.status, errorType: row.errorType };
}

/** RestError is a refusal of the REST layer itself; `errors` lists per-field problems (422). */
export class RestError extends Error {
  readonly rest: RestStatus;
  readonly errors: FieldError[];
  readonly headers: Record<string, string>;
  constructor(
    rest: RestStatus,
    detail: string,
    options: { errors?: FieldError[]; headers?: Record<string, string> } = {},
  ) {
    super(detail);
    this.name = "RestError";
    this.rest = rest;
    this.errors = options.errors ?? [];
    this.headers = options.headers ?? {};
  }
}

/** FieldError is one problem with the body, in pydantic's shape ({loc, msg, type}). */
export interface FieldError {
  loc: Array<string | number>;
  msg: string;
  type: string;
}

/** ErrorBody is the JSON of every REST error: `detail` is always a human-readable string. */
export interface ErrorBody {
  detail: string;
  error_type: string;
  request_id?: string;
  errors?: FieldError[];
}

/** errorBodyOf renders a ConnectError; its message is already sanitized by the observability interceptor. */
export function errorBodyOf(
  err: ConnectError,
  inBody: boolean,
  requestId?: string,
): { status: number; body: ErrorBody } {
  const reason = reasonOf(err);
  const rest =
    (reason !== undefined &&
      Object.hasOwn(REST_STATUS_BY_REASON, reason) &&
      REST_STATUS_BY_REASON[reason as ErrorReason]) ||
    restStatusOf(err.code, inBody);
  const detail = err.rawMessage || Code[err.code] || "error";
  return {
    status: rest.status,
    body: { detail, error_type: rest.errorType, ...(requestId ? { request_id: requestId } : {}) },
  };
}
