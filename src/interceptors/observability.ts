import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { PaasError, toConnectError } from "../errors.ts";
import { callerKey, peerKey, requestIdKey } from "../services/context-keys.ts";
import { grpcType, metrics, since } from "../metrics/metrics.ts";

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * observabilityInterceptor is the outermost interceptor: it assigns the request id, turns
 * every failure into a sanitized ConnectError (the one place where errors leave the
 * service), and logs one line per RPC with method, code, duration and target.
 */
export function observabilityInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const incoming = req.header.get("x-request-id");
    const requestId = incoming && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    req.contextValues.set(requestIdKey, requestId);
    const target = req.stream ? {} : targetOf(req.message as Record<string, unknown>);
    const labels = {
      grpc_type: grpcType(req.method.methodKind),
      grpc_service: req.service.typeName,
      grpc_method: req.method.name,
    };
    const streaming = req.method.methodKind === "server_streaming" || req.method.methodKind === "bidi_streaming";
    metrics.rpcStarted.inc(labels);
    let streamOpen = false;
    // code is undefined for success.
    const log = (code?: Code, err?: unknown) => {
      metrics.rpcHandled.inc({ ...labels, grpc_code: code === undefined ? "OK" : Code[code] });
      if (!streaming) metrics.rpcHandling.observe(labels, since(started));
      if (streamOpen) {
        streamOpen = false;
        metrics.rpcActiveStreams.dec(labels);
      }
      const line = {
        rpc: `${req.service.typeName}/${req.method.name}`,
        code: code === undefined ? "ok" : Code[code],
        ms: Math.round(performance.now() - started),
        requestId,
        caller: req.contextValues.get(callerKey)?.id,
        peer: req.contextValues.get(peerKey) || undefined,
        ...target,
        ...(err === undefined ? {} : errorFields(err)),
      };
      if (code === undefined || code === Code.Canceled) logger.info(line, "rpc");
      else if (code === Code.Internal || code === Code.Unknown) logger.error(line, "rpc");
      else logger.warn(line, "rpc");
    };
    // A call its caller gave up on (the stream reset, the connection gone, the deadline passed)
    // failed because of that, whatever broke inside it as a result (a request stream that
    // errors, a write to a closed socket): it is Canceled (or DeadlineExceeded), not ours.
    const failure = (err: unknown): ConnectError => {
      const mapped = toConnectError(err);
      const own = mapped.code !== Code.Internal && mapped.code !== Code.Unknown;
      return own || !req.signal.aborted ? mapped : ConnectError.from(req.signal.reason, Code.Canceled);
    };
    let res;
    try {
      res = await next(req);
    } catch (err) {
      const mapped = failure(err);
      log(mapped.code, err);
      throw mapped;
    }
    res.header.set("x-request-id", requestId);
    if (!res.stream) {
      log();
      return res;
    }
    const messages = res.message;
    streamOpen = true;
    metrics.rpcActiveStreams.inc(labels);
    async function* logged() {
      try {
        for await (const m of messages) {
          metrics.rpcMsgSent.inc(labels);
          yield m;
        }
        // A stream that ended because its caller went away was cancelled, not completed.
        if (req.signal.aborted) log(ConnectError.from(req.signal.reason, Code.Canceled).code);
        else log();
      } catch (err) {
        const mapped = failure(err);
        log(mapped.code, err);
        throw mapped;
      } finally {
        // Ended without reaching either branch (the stream was returned early): still closed.
        if (streamOpen) {
          streamOpen = false;
          metrics.rpcActiveStreams.dec(labels);
        }
      }
    }
    return { ...res, message: logged() };
  };
}

function targetOf(message: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const field of ["namespace", "name"] as const) {
    const v = message[field];
    if (typeof v === "string" && v !== "") out[field] = v.slice(0, 80);
  }
  return out;
}

/** errorFields describes a failure for the log; the cause (e.g. helm's stderr) appears only here. */
function errorFields(err: unknown): Record<string, unknown> {
  if (err instanceof ConnectError) return { error: err.rawMessage };
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? err.cause.message : err.cause;
    return {
      error: err.message,
      ...(cause === undefined ? {} : { cause }),
      ...(err instanceof PaasError ? {} : { stack: err.stack }),
    };
  }
  return { error: String(err) };
}
