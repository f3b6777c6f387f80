import { Code, ConnectError } from "@connectrpc/connect";

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
  | "internal";

/**
 * PaasError is the one error type of the domain layer. Its message is safe to show
 * to callers; anything sensitive (raw helm stderr, stack traces) stays in `cause`
 * and reaches only the log.
 */
export class PaasError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PaasError";
    this.kind = kind;
  }
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
  if (err instanceof ConnectError) return err;
  if (err instanceof PaasError) return new ConnectError(err.message, codeOf(err.kind));
  return new ConnectError("internal error", Code.Internal);
}
