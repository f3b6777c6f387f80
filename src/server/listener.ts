import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { AddressInfo } from "node:net";

type Handler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

// Every HTTP/2 connection with prior knowledge (gRPC over h2c) starts with this preface.
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** Listener is one TCP port serving HTTP/1.1 and cleartext HTTP/2. */
export interface Listener {
  port: number;
  /** inflight is the number of requests being served. */
  readonly inflight: number;
  /** stopAccepting closes the port; open connections stay. */
  stopAccepting(): void;
  /** drain asks clients to go away: GOAWAY on HTTP/2 sessions, idle HTTP/1 connections closed. */
  drain(): void;
  /** closeAll destroys every remaining connection. */
  closeAll(): void;
}

/**
 * listen serves `handler` on one port for HTTP/1.1 and HTTP/2 cleartext. Node's
 * allowHTTP1 only negotiates over TLS, so each new socket's first bytes are compared with
 * the HTTP/2 connection preface and the socket is handed to an http2 or an http1 server.
 */
export async function listen(handler: Handler, host: string, port: number): Promise<Listener> {
  let inflight = 0;
  const counted: Handler = (req, res) => {
    inflight++;
    res.once("close", () => inflight--);
    handler(req, res);
  };
  // requestTimeout 0: server-streaming calls over HTTP/1.1 (Connect, gRPC-Web) may last hours.
  const h1 = http.createServer({ requestTimeout: 0, keepAliveTimeout: 65_000 }, counted);
  // Requests Node's parser rejects (e.g. raw non-ASCII bytes in the request line) never reach
  // a handler; answer them in the same JSON error shape as everything else.
  h1.on("clientError", (err: NodeJS.ErrnoException, socket: net.Socket) => {
    if (err.code === "ECONNRESET" || !socket.writable) {
      socket.destroy();
      return;
    }
    const tooLarge = err.code === "HPE_HEADER_OVERFLOW";
    const body = JSON.stringify({
      detail: tooLarge ? "Request headers are too large" : "Malformed HTTP request",
      error_type: tooLarge ? "payload_too_large" : "validation_error",
    });
    const status = tooLarge ? "431 Request Header Fields Too Large" : "400 Bad Request";
    socket.end(
      `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  });
  const h2 = http2.createServer({}, counted);
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  const sockets = new Set<net.Socket>();

  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    sniff(socket, h1, h2);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    get inflight() {
      return inflight;
    },
    stopAccepting: () => server.close(),
    drain() {
      for (const s of sessions) s.close();
      h1.closeIdleConnections();
    },
    closeAll() {
      for (const s of sockets) s.destroy();
    },
  };
}

/**
 * sniff reads until the first bytes decide the protocol, then gives them to the chosen
 * server: the http2 session reads bytes put back on the socket's buffer, while the http1
 * parser consumes the socket's handle directly and only sees them as a 'data' event.
 */
function sniff(socket: net.Socket, h1: http.Server, h2: http2.Http2Server): void {
  let seen = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    seen = Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, H2_PREFACE.length);
    const isH2 = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
    if (isH2 && seen.length < H2_PREFACE.length) return; // need more bytes
    socket.off("data", onData);
    socket.off("error", onError);
    socket.setTimeout(0);
    if (isH2) {
      socket.pause();
      socket.unshift(seen);
      h2.emit("connection", socket);
    } else {
      h1.emit("connection", socket);
      socket.emit("data", seen);
    }
  };
  const onError = () => socket.destroy();
  socket.on("data", onData);
  socket.on("error", onError);
  // A peer that connects and says nothing is dropped after a while.
  socket.setTimeout(30_000, () => socket.destroy());
}
