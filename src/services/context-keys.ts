import { createContextKey } from "@connectrpc/connect";

// The values a request carries from the transport (interceptors, the listener) to the handlers
// and the log: who calls, from where, under which request and operation id.

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
