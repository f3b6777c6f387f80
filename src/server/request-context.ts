import { createContextKey, createContextValues, type ContextValues } from "@connectrpc/connect";
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";

/** Caller is who made a request: the id of the API key, never the key. */
export interface Caller {
  id: string;
}

/** callerKey carries the authenticated caller from the API-key interceptor to handlers and logs. */
export const callerKey = createContextKey<Caller | undefined>(undefined, { description: "authenticated caller" });

/** peerKey carries the client's address, set from the socket when the request arrives. */
export const peerKey = createContextKey<string>("", { description: "client address" });

/** requestIdKey carries the id under which a request is logged and answered (x-request-id). */
export const requestIdKey = createContextKey<string>("", { description: "request id" });

/** operationKey carries the id of the mutation a request started (set once its audit intent is due). */
export const operationKey = createContextKey<string>("", { description: "operation id" });

/** contextValuesOf starts a request's context values from its socket: the client's address, for logs. */
export function contextValuesOf(req: IncomingMessage | Http2ServerRequest): ContextValues {
  const values = createContextValues();
  const address = req.socket?.remoteAddress;
  if (address) values.set(peerKey, address);
  return values;
}
