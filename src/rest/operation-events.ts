import { fromBinary, toBinary, create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import type { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  OperationService,
  WatchOperationRequestSchema,
  WatchOperationResponseSchema,
} from "../../gen/paas/v1/operation_pb.js";
import { errorBodyOf } from "./rest-errors.ts";
import { restOperation } from "./shapes.ts";

type Res = Parameters<ReturnType<typeof connectNodeAdapter>>[1];

/** The path of the Server-Sent Events of one operation: GET /api/operations/{id}/events. */
export function eventsTarget(segments: readonly string[]): string | undefined {
  return segments.length === 4 && segments[0] === "api" && segments[1] === "operations" && segments[3] === "events"
    ? segments[2]
    : undefined;
}

const WATCH_PATH = `/${OperationService.typeName}/${OperationService.method.watchOperation.name}`;
/** A comment line this often keeps proxies from closing a quiet stream. */
const KEEPALIVE_MS = 15_000;

/**
 * serveOperationEvents streams WatchOperation as Server-Sent Events: one `operation` event
 * per message (the operation in the /api/operations shape), then the stream ends after the
 * terminal state. The RPC runs in process through the app's router (interceptors included),
 * over the Connect streaming protocol; a refusal before the first message (no key, not
 * found) is answered as a REST error with its status instead.
 */
export async function serveOperationEvents(
  handler: UniversalHandler,
  id: string,
  res: Res,
  header: Headers,
  contextValues: ContextValues,
  requestId: string,
): Promise<void> {
  const abort = new AbortController();
  res.once("close", () => abort.abort(new ConnectError("the SSE client went away", Code.Canceled)));
  header.set("content-type", "application/connect+proto");
  const answer = await handler({
    httpVersion: "1.1",
    url: `http://in-process${WATCH_PATH}`,
    method: "POST",
    header,
    body: once(envelope(0, toBinary(WatchOperationRequestSchema, create(WatchOperationRequestSchema, { id })))),
    signal: abort.signal,
    contextValues,
  });
  let started = false;
  let keepalive: NodeJS.Timeout | undefined;
  const start = () => {
    if (started) return;
    started = true;
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-request-id": requestId,
      "x-accel-buffering": "no",
    });
    keepalive = setInterval(() => res.write(": keep-alive\n\n"), KEEPALIVE_MS);
    keepalive.unref();
  };
  const fail = (err: ConnectError) => {
    const { status, body } = errorBodyOf(err, false, requestId);
    if (!started) {
      res.writeHead(status, { "content-type": "application/json", "x-request-id": requestId });
      res.end(JSON.stringify(body));
      return;
    }
    res.write(`event: error\ndata: ${JSON.stringify(body)}\n\n`);
  };
  try {
    let buffer = Buffer.alloc(0);
    for await (const chunk of answer.body ?? []) {
      buffer = Buffer.concat([buffer, chunk]);
      while (buffer.length >= 5) {
        const flags = buffer[0]!;
        const length = buffer.readUInt32BE(1);
        if (buffer.length < 5 + length) break;
        const data = buffer.subarray(5, 5 + length);
        buffer = buffer.subarray(5 + length);
        if (flags & 0x02) {
          // End of stream: {"error": {...}} when the RPC failed.
          const end = JSON.parse(data.toString("utf8") || "{}") as { error?: { code?: string; message?: string } };
          if (end.error) fail(new ConnectError(end.error.message ?? "error", codeOf(end.error.code)));
          continue;
        }
        const msg = fromBinary(WatchOperationResponseSchema, data);
        start();
        res.write(
          `event: operation\nid: ${msg.operation?.steps.length ?? 0}\ndata: ${JSON.stringify(restOperation(msg.operation))}\n\n`,
        );
      }
    }
    if (answer.status !== 200 && !started) fail(new ConnectError(`HTTP ${answer.status}`, Code.Internal));
  } catch (err) {
    if (!abort.signal.aborted) fail(ConnectError.from(err));
  } finally {
    clearInterval(keepalive);
    if (!res.writableEnded) res.end();
  }
}

function envelope(flags: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + data.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.length);
  out.set(data, 5);
  return out;
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

/** codeOf reads a Connect error code name ("not_found") back into a Code. */
function codeOf(name: string | undefined): Code {
  const key = Object.keys(Code).find((k) => k.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase() === name);
  return key ? (Code[key as keyof typeof Code] as Code) : Code.Unknown;
}
