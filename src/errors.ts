import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";

/** ErrorKind names the domain failures that adapters and handlers report. */
export type ErrorKind =
  | "invalid_argument"
  | "permission_denied"
  | "unauthenticated"
  | "not_found"
  | "already_exists"
  | "conflict"
  | "failed_precondition"
  | "timeout"
  | "resource_exhausted"
  | "unavailable"
  | "cancelled"
  | "internal";

/**
 * ErrorReason refines a kind where callers must tell cases apart; it travels as a
 * google.rpc.ErrorInfo detail (domain ERROR_DOMAIN) and picks the REST status.
 */
export type ErrorReason =
  // Values over the configured size, depth or key-count limits.
  | "VALUES_TOO_LARGE"
  // An idempotency key reused with a different request.
  | "IDEMPOTENCY_KEY_REUSED"
  // The first request with this idempotency key is still running.
  | "IDEMPOTENCY_KEY_IN_USE"
  // The replica running the operation stopped before it finished (the operation failed).
  | "REPLICA_LOST"
  // CancelOperation stopped the operation.
  | "OPERATION_CANCELLED"
  // The chart ships CustomResourceDefinitions (crds/), which tenants cannot install.
  | "CHART_HAS_CRDS";

/** ERROR_DOMAIN is the ErrorInfo domain of this service's reasons. */
export const ERROR_DOMAIN = "paas.io";

/**
 * PaasError is the one error type of the domain layer. Its message is safe to show
 * to callers; anything sensitive (raw helm stderr, stack traces) stays in `cause`
 * and reaches only the log.
 */
export class PaasError extends Error {
  readonly kind: ErrorKind;
  readonly reason: ErrorReason | undefined;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown; reason?: ErrorReason }) {
    super(message, options);
    this.name = "PaasError";
    this.kind = kind;
    this.reason = options?.reason;
  }
}

/** printable shortens a caller's string and escapes what could break a log line or a message. */
export function printable(s: string): string {
  const short = s.length > 80 ? `${s.slice(0, 80)}…` : s;
  return JSON.stringify(short).slice(1, -1);
}

// The only place where domain failures become gRPC codes.
const codeByKind: Record<ErrorKind, Code> = {
  invalid_argument: Code.InvalidArgument,
  permission_denied: Code.PermissionDenied,
  unauthenticated: Code.Unauthenticated,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  // Another operation on the release is in progress: the caller may retry.
  conflict: Code.Aborted,
  failed_precondition: Code.FailedPrecondition,
  timeout: Code.DeadlineExceeded,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  // CancelOperation stopped the operation.
  cancelled: Code.Canceled,
  internal: Code.Internal,
};

/** codeOf returns the gRPC code for a domain error kind. */
export function codeOf(kind: ErrorKind): Code {
  return codeByKind[kind];
}

/**
 * toConnectError turns any thrown value into a ConnectError with a sanitized
 * message: PaasError keeps its kind and message, ConnectError passes through,
 * anything else becomes INTERNAL without its text.
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError)
    return isUndecodableRequest(err)
      ? new ConnectError(err.rawMessage, Code.InvalidArgument, err.metadata, undefined, err)
      : err;
  if (err instanceof PaasError) {
    const details = err.reason
      ? [{ desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason: err.reason, domain: ERROR_DOMAIN }) }]
      : [];
    return new ConnectError(err.message, codeOf(err.kind), undefined, details);
  }
  return new ConnectError("internal error", Code.Internal);
}

/**
 * connect-es reports a request it cannot decode with codes that blame the server: INTERNAL for
 * binary that does not parse ("parse binary: premature EOF"), a compressed envelope without an
 * encoding, a body that does not decompress; UNIMPLEMENTED for a unary or server-streaming call
 * that does not carry exactly one message. All of them are the caller's bad input (malformed
 * JSON already is INVALID_ARGUMENT there).
 */
const UNDECODABLE: ReadonlyArray<readonly [Code, RegExp]> = [
  [Code.Internal, /^parse binary: /],
  [Code.Internal, /^received compressed envelope, but do not know how to decompress$/],
  [Code.Internal, /^decompression failed$/],
  [Code.Unimplemented, /^protocol error: (missing input message|received extra input message) for /],
];

/** isUndecodableRequest tells whether connect-es raised `err` for a request message it could not decode. */
export function isUndecodableRequest(err: ConnectError): boolean {
  return UNDECODABLE.some(([code, message]) => err.code === code && message.test(err.rawMessage));
}

/** reasonOf reads the ErrorInfo reason of this service from a ConnectError, if any. */
export function reasonOf(err: ConnectError): string | undefined {
  return err.findDetails(ErrorInfoSchema).find((d) => d.domain === ERROR_DOMAIN)?.reason;
}
