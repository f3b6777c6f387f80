import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { isUndecodableRequest } from "../errors.ts";

/**
 * reclassifyUndecodableRequests is the router's request gate (it runs for every RPC before the
 * body is read). connect-es decodes a unary request before any interceptor runs, and reports a
 * message it cannot decode as INTERNAL (src/errors.ts, isUndecodableRequest); every protocol's
 * handler then aborts the call's context with that very error before it writes the answer. The
 * gate listens for that abort and makes the error the caller's INVALID_ARGUMENT, so that
 * Connect, gRPC and gRPC-Web all answer it as such. (Streaming calls decode inside the
 * interceptors, where toConnectError maps the same errors.)
 */
export function reclassifyUndecodableRequests(context: HandlerContext): void {
  const signal = context.signal;
  if (signal.aborted) return;
  signal.addEventListener(
    "abort",
    () => {
      const reason: unknown = signal.reason;
      if (reason instanceof ConnectError && isUndecodableRequest(reason)) {
        // The handler holds this object and reads its code right after the abort.
        Object.assign(reason, { code: Code.InvalidArgument, message: `[invalid_argument] ${reason.rawMessage}` });
      }
    },
    { once: true },
  );
}
