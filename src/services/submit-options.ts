import type { HandlerContext } from "@connectrpc/connect";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { PaasError } from "../errors.ts";
import type { Call } from "../operations/call.ts";
import type { SubmitOptions } from "../operations/engine.ts";
import { callerKey, operationKey, peerKey, requestIdKey } from "./context-keys.ts";

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** callOf reads who is calling; the idempotency key may come as the header or the request field, not two different ones. */
function callOf(ctx: HandlerContext, fieldKey: string): Call {
  const header = ctx.requestHeader.get("idempotency-key") ?? "";
  if (header && fieldKey && header !== fieldKey) {
    throw new PaasError("invalid_argument", "the Idempotency-Key header and the idempotency_key field differ");
  }
  const key = fieldKey || header;
  if (key && !IDEMPOTENCY_KEY.test(key)) {
    throw new PaasError(
      "invalid_argument",
      "idempotency key must be 1 to 255 printable ASCII characters without spaces",
    );
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
function prefersAsync(ctx: HandlerContext): boolean {
  const prefer = ctx.requestHeader.get("prefer") ?? "";
  return prefer.split(",").some((p) => p.split(";")[0]!.trim().toLowerCase() === "respond-async");
}

/** submitOptions is how a handler hands a mutating request to the engine: who calls, async or not, and where the operation id goes. */
export function submitOptions<Req extends DescMessage>(req: MessageShape<Req>, ctx: HandlerContext): SubmitOptions {
  const fields = req as { idempotencyKey?: unknown; async?: unknown };
  return {
    call: callOf(ctx, typeof fields.idempotencyKey === "string" ? fields.idempotencyKey : ""),
    async: fields.async === true || prefersAsync(ctx),
    // The id is in the context (logs, the denial audit) and a response header (REST's Operation-Id).
    announce: (id) => {
      ctx.values.set(operationKey, id);
      ctx.responseHeader.set("operation-id", id);
    },
  };
}
