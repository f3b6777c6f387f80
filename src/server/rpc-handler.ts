import type http from "node:http";
import type http2 from "node:http2";
import { Code, ConnectError, createConnectRouter, type ConnectRouterOptions } from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { drainBody, type BodyLimits } from "./body-limit.ts";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;
export type NodeHandler = (req: Req, res: Res) => void;

export interface RpcHandlerOptions extends ConnectRouterOptions {
  routes: ConnectNodeAdapterOptions["routes"];
  fallback: NodeHandler;
  contextValues: NonNullable<ConnectNodeAdapterOptions["contextValues"]>;
  /** MAX_BODY_BYTES and how a body that is not read to its end is drained (src/server/body-limit.ts). */
  body: BodyLimits;
  logger: Logger;
}

/**
 * createRpcHandler serves gRPC, gRPC-Web and Connect as connect-node's connectNodeAdapter
 * does (the same router, request and response conversion), with one difference: the request
 * body is read without destroying the request when the RPC stops reading early (a body over
 * MAX_BODY_BYTES, a malformed envelope), and before the answer is written the rest of such a
 * body is drained within the same bounds as REST bodies (src/server/body-limit.ts). A client
 * that sends its whole body before reading (Python's urllib, requests) thus gets the
 * RESOURCE_EXHAUSTED answer instead of a broken pipe; past the bounds HTTP/1.1 closes the
 * connection after the answer.
 */
export function createRpcHandler(options: RpcHandlerOptions): NodeHandler {
  const router = createConnectRouter({
    acceptCompression: [compressionGzip, compressionBrotli],
    ...options,
    readMaxBytes: options.body.maxBytes,
  });
  options.routes(router);
  const paths = new Map<string, UniversalHandler>(router.handlers.map((h) => [h.requestPath, h]));

  const serve = async (uHandler: UniversalHandler, req: Req, res: Res) => {
    const uReq = universalRequestFromNodeRequest(req, res, undefined, options.contextValues(req));
    const body = new RequestBody(req);
    uReq.body = body;
    const uRes = await uHandler(uReq);
    // The RPC has its answer; a body it did not read to its end (and no longer reads) is
    // drained first, so that the caller is still reading when the answer comes.
    if (body.abandoned) {
      const drained = await drainBody(req, options.body);
      if (drained === "cut" && req.httpVersionMajor === 1) (uRes.header ??= new Headers()).set("connection", "close");
    }
    await universalResponseToNodeResponse(uRes, res);
  };

  return (req, res) => {
    const uHandler = paths.get((req.url ?? "").split("?", 2)[0] ?? "");
    if (!uHandler) {
      options.fallback(req, res);
      return;
    }
    serve(uHandler, req, res).catch((reason: unknown) => {
      if (ConnectError.from(reason).code === Code.Aborted) return;
      options.logger.error(
        {
          rpc: `${uHandler.service.typeName}/${uHandler.method.name}`,
          error: reason instanceof Error ? reason.message : String(reason),
        },
        "rpc handler failed",
      );
    });
  };
}

/**
 * RequestBody is the request body as the RPC reads it. Unlike a plain `for await` over the
 * request, stopping early leaves the request intact (Node's iterator would destroy it and,
 * with it, the connection) so that the rest can be drained.
 */
class RequestBody implements AsyncIterable<Uint8Array> {
  private state: "unread" | "reading" | "stopped" | "ended" = "unread";
  private readonly req: Req;
  constructor(req: Req) {
    this.req = req;
  }

  /** abandoned: the body is not read to its end, and nothing reads it any more. */
  get abandoned(): boolean {
    return (this.state === "unread" || this.state === "stopped") && !this.req.readableEnded;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    this.state = "reading";
    try {
      for await (const chunk of this.req.iterator({ destroyOnReturn: false })) yield chunk as Uint8Array;
      if ("stream" in this.req) {
        // Node ends the body of an HTTP/2 stream the caller reset (RST_STREAM CANCEL: grpcurl or
        // a client stopping a stream) just before it reports the reset; wait for that report so
        // that a cancelled request stream does not look like one the caller closed.
        await new Promise((resolve) => setImmediate(resolve));
        if (this.req.aborted) throw new ConnectError("the caller cancelled the call", Code.Canceled);
      }
      this.state = "ended";
    } finally {
      if (this.state === "reading") this.state = "stopped";
    }
  }
}
