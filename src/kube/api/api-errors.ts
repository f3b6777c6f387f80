import { ApiException } from "@kubernetes/client-node";
import { type ErrorKind, PaasError } from "../../errors.ts";

// The one place where Kubernetes API failures become domain errors. Messages stay short
// and never carry raw response bodies or headers (ApiException's own message holds both);
// the original error rides along as `cause` for the log.

/** KubeStatus is the part of a metav1.Status body worth looking at. */
export interface KubeStatus {
  code?: number;
  reason?: string;
  message?: string;
}

/** HttpStatusError is what our own requests (watch, ping) throw for a non-2xx answer, shaped like ApiException. */
export class HttpStatusError extends Error {
  readonly code: number;
  readonly body: unknown;
  constructor(code: number, body: unknown) {
    super(`HTTP ${code}`);
    this.name = "HttpStatusError";
    this.code = code;
    this.body = body;
  }
}

/** httpCodeOf returns the HTTP status of a failed API call, or undefined when there was no answer. */
export function httpCodeOf(err: unknown): number | undefined {
  if (err instanceof ApiException || err instanceof HttpStatusError) return err.code;
  return undefined;
}

/** statusOf extracts the metav1.Status the API server sent with a failure, if any. */
export function statusOf(err: unknown): KubeStatus {
  if (!(err instanceof ApiException || err instanceof HttpStatusError)) return {};
  let body: unknown = err.body;
  if (typeof body === "string") {
    try {
      body = JSON.parse(body);
    } catch {
      return {};
    }
  }
  if (typeof body !== "object" || body === null) return {};
  const s = body as Record<string, unknown>;
  return {
    code: typeof s["code"] === "number" ? s["code"] : undefined,
    reason: typeof s["reason"] === "string" ? s["reason"] : undefined,
    message: typeof s["message"] === "string" ? s["message"] : undefined,
  };
}

// Errors without an HTTP answer: the server could not be reached or did not answer in time.
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ETIMEDOUT",
  "EPIPE",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
]);

/** isNetworkError tells whether a failure means the API server was unreachable or silent (fetch failures, timeouts). */
export function isNetworkError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    const name = (e as { name?: unknown }).name;
    if (typeof code === "string" && NETWORK_CODES.has(code)) return true;
    if (name === "TimeoutError") return true;
    // undici's fetch wraps the socket error: TypeError("fetch failed", { cause }).
    if (e instanceof TypeError && e.message === "fetch failed") return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

// Server messages are short and useful for these codes (which field is invalid, which
// quota is exceeded); cap them anyway.
function clip(message: string | undefined): string {
  if (!message) return "";
  return message.length > 300 ? `${message.slice(0, 297)}...` : message;
}

/**
 * kubeError maps any failure of a Kubernetes call to a PaasError. `what` names the
 * operation for the message, e.g. `create namespace "paas-ws-a"`.
 */
export function kubeError(err: unknown, what: string): PaasError {
  if (err instanceof PaasError) return err;
  const code = httpCodeOf(err);
  if (code === undefined) {
    if (isNetworkError(err)) return new PaasError("unavailable", `${what}: Kubernetes API unreachable`, { cause: err });
    return new PaasError("internal", `${what}: unexpected failure`, { cause: err });
  }
  const status = statusOf(err);
  const pick = (kind: ErrorKind, message: string) => new PaasError(kind, `${what}: ${message}`, { cause: err });
  switch (code) {
    case 400:
    case 422:
      return pick("invalid_argument", clip(status.message) || "rejected as invalid");
    case 401:
      // Our own credentials were refused: an operator problem, not the caller's.
      return pick("internal", "the service's Kubernetes credentials were rejected");
    case 403:
      // The API server answers 403 both for RBAC and for admission refusals such as
      // "exceeded quota"; only the latter is worth showing, and it is about resources.
      if (status.message?.includes("exceeded quota")) return pick("resource_exhausted", clip(status.message));
      return pick("permission_denied", "forbidden by the Kubernetes API");
    case 404:
      return pick("not_found", "not found");
    case 409:
      return status.reason === "AlreadyExists"
        ? pick("already_exists", "already exists")
        : pick("conflict", "modified concurrently, retry");
    case 410:
      return pick("unavailable", "watch expired");
    case 429:
      return pick("unavailable", "Kubernetes API is throttling requests");
    case 500:
      return pick("internal", "Kubernetes API internal error");
    case 502:
    case 503:
    case 504:
      return pick("unavailable", "Kubernetes API unavailable");
    default:
      return pick("internal", `unexpected HTTP ${code} from the Kubernetes API`);
  }
}
