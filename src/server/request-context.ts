import { createContextValues, type ContextValues } from "@connectrpc/connect";
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { peerKey } from "../services/context-keys.ts";

/** contextValuesOf starts a request's context values from its socket: the client's address, for logs. */
export function contextValuesOf(req: IncomingMessage | Http2ServerRequest): ContextValues {
  const values = createContextValues();
  const address = req.socket?.remoteAddress;
  if (address) values.set(peerKey, address);
  return values;
}
