import type { HandlerContext } from "@connectrpc/connect";
import { PaasError } from "../errors.ts";
import { callerKey, peerKey, requestIdKey } from "../server/request-context.ts";

/** Call is who asks for a mutation and how, read from the request's context. */
export interface Call {
  caller: string;
  sourceIp: string;
  userAgent: string;
  requestId: string;
  idempotencyKey: string;
  /** The caller's cancellation: a synchronous operation not yet started when it fires does not start. */
  signal: AbortSignal;
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** callOf reads who is calling; the idempotency key may come as the header or the request field, not two different ones. */
export function callOf(ctx: HandlerContext, fieldKey: string): Call {
  const header = ctx.requestHeader.get("idempotency-key") ?? "";
  if (header && fieldKey && header !== fieldKey) {
    throw new PaasError("invalid_argument", "the Idempotency-Key header and the idempotency_key field differ");
  }
  const key = fieldKey || header;
  if (key && !IDEMPOTENCY_KEY.test(key)) {
    throw new PaasError("invalid_argument", "idempotency key must be 1 to 255 printable ASCII characters without spaces");
  }
  return {
    caller: ctx.values.get(callerKey)?.id ?? "",
    sourceIp: ctx.values.get(peerKey),
    userAgent: (ctx.requestHeader.get("user-agent") ?? "").slice(0, 256),
    requestId: ctx.values.get(requestIdKey),
    idempotencyKey: key,
    signal: ctx.signal,
  };
}

/** prefersAsync reads RFC 7240's `Prefer: respond-async` (the REST form of the `async` field). */
export function prefersAsync(ctx: HandlerContext): boolean {
  const prefer = ctx.requestHeader.get("prefer") ?? "";
  return prefer.split(",").some((p) => p.split(";")[0]!.trim().toLowerCase() === "respond-async");
}

/** SYSTEM_CALL is the reconciler's and the adopting replica's identity where no request is behind the work. */
export function systemCall(caller = "system"): Call {
  return { caller, sourceIp: "", userAgent: "paas-operator", requestId: "", idempotencyKey: "", signal: new AbortController().signal };
}
