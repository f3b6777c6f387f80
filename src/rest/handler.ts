import { randomUUID } from "node:crypto";
import { fromBinary, toBinary, type Message } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createConnectRouter,
  type ConnectRouter,
  type ContextValues,
  type Interceptor,
} from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { codeFromHttpStatus, errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import type { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { bodyLimits } from "../server/body-limit.ts";
import { sendJson } from "../server/http-routes.ts";
import { decodeRequest, parseJsonBody, readBody } from "./body.ts";
import { errorBodyOf, REST_ONLY, RestError, type ErrorBody } from "./rest-errors.ts";
import { buildRoutes, matchRoute, REST_SERVICES, type RestRoute } from "./routes.ts";
import { OperationService, OperationState, type Operation } from "../../gen/paas/v1/operation_pb.js";
import { eventsTarget, serveOperationEvents } from "./operation-events.ts";

type NodeHandler = ReturnType<typeof connectNodeAdapter>;
type Req = Parameters<NodeHandler>[0];
type Res = Parameters<NodeHandler>[1];

/** RestDeps are what the REST layer is built from: the app's own routes and interceptors. */
export interface RestDeps {
  /** The app's route registration; the same service implementations serve REST. */
  routes: (router: ConnectRouter) => void;
  /** The app's interceptors, outermost first: observability, API key, namespace prefix. */
  interceptors: Interceptor[];
  /** Largest REST body, bytes (MAX_BODY_BYTES). */
  maxBodyBytes: number;
  /** How long an oversized body is drained before the connection is closed; default 30s. */
  drainMs?: number;
  logger: Logger;
  /** Context values per request (the peer address), as the Connect adapter sets them. */
  contextValues: (req: Req) => ContextValues;
  /** Serves every path outside the REST prefixes (/health, /healthz, /readyz, JSON 404). */
  fallback: NodeHandler;
}

/** Request headers a REST call passes to the RPC besides x-request-id; nothing else crosses. */
const FORWARDED = ["x-api-key", "idempotency-key", "user-agent", "prefer"] as const;

// The request ids the observability interceptor accepts from callers; others get a fresh one.
const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * createRestHandler serves the old operator's REST API by transcoding each request into a
 * unary RPC on an in-process Connect router built from the app's own `routes` and
 * `interceptors`: the very service implementations and interceptor instances that serve
 * gRPC and Connect, so authentication, the namespace prefix, validation, logging and error
 * sanitizing are theirs. This layer only maps paths and JSON shapes and renders errors.
 */
export function createRestHandler(deps: RestDeps): NodeHandler {
  const router = createConnectRouter({ interceptors: deps.interceptors, connect: true, grpc: false, grpcWeb: false });
  deps.routes(router);
  const byPath = new Map<string, UniversalHandler>(router.handlers.map((h) => [h.requestPath, h]));
  // Routes of the services the router serves; a test router may serve only some of them.
  const registered = new Set(router.handlers.map((h) => h.service.typeName));
  const table = buildRoutes(REST_SERVICES.filter((s) => registered.has(s.typeName)));
  const handlerOf = new Map<RestRoute, UniversalHandler>();
  for (const route of table) {
    const h = byPath.get(`/${route.method.parent.typeName}/${route.method.name}`);
    if (!h) throw new Error(`REST: ${route.method} is not registered on the router`);
    handlerOf.set(route, h);
  }
  const watchOperation = byPath.get(`/${OperationService.typeName}/${OperationService.method.watchOperation.name}`);
  // The first literal of every template ("api"): other paths go to the fallback untouched.
  const roots = new Set(table.map((r) => r.segments[0]).flatMap((s) => (s && "literal" in s ? [s.literal] : [])));

  const limits = bodyLimits(deps.maxBodyBytes, deps.drainMs);

  const serve = async (req: Req, res: Res, segments: string[]) => {
    const path = (req.url ?? "/").split("?")[0]!;
    // One id for the REST answer and the RPC's log line: the caller's, or a fresh one.
    const incoming = req.headers["x-request-id"];
    const requestId = typeof incoming === "string" && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    res.setHeader("x-request-id", requestId);
    const refuse = (err: RestError) => {
      deps.logger.warn(
        {
          rest: `${req.method} ${path.slice(0, 200)}`,
          status: err.rest.status,
          errorType: err.rest.errorType,
          detail: err.message,
          requestId,
          peer: req.socket?.remoteAddress,
        },
        "rest request refused",
      );
      const body: ErrorBody = {
        detail: err.message,
        error_type: err.rest.errorType,
        request_id: requestId,
        ...(err.errors.length > 0 ? { errors: err.errors } : {}),
      };
      // "Connection: close" is an HTTP/1.1 header; HTTP/2 refuses it (the stream just ends).
      const headers = Object.fromEntries(
        Object.entries(err.headers).filter(([k]) => k !== "connection" || req.httpVersionMajor === 1),
      );
      reply(res, err.rest.status, body, headers);
    };
    try {
      const decoded = decodeSegments(segments);
      const eventsOf = eventsTarget(decoded);
      if (eventsOf !== undefined && watchOperation && (req.method === "GET" || req.method === "HEAD")) {
        checkPathValue("id", eventsOf);
        req.resume();
        await serveOperationEvents(
          watchOperation,
          eventsOf,
          res,
          requestHeaders(req, requestId),
          deps.contextValues(req),
          requestId,
        );
        return;
      }
      const match = matchRoute(table, req.method ?? "GET", decoded);
      if (!match) throw new RestError(REST_ONLY.noRoute, `Not found: ${req.method} ${path.slice(0, 200)}`);
      if (!match.route) {
        const allow = match.allowed.flatMap((v) => (v === "GET" ? ["GET", "HEAD"] : [v])).join(", ");
        throw new RestError(
          REST_ONLY.methodNotAllowed,
          `Method ${req.method} not allowed on ${path.slice(0, 200)}; allowed: ${allow}`,
          { headers: { allow } },
        );
      }
      const route = match.route;
      for (const [field, value] of match.params) checkPathValue(field.name, value);
      let body = {};
      if (route.hasBody) body = parseJsonBody(await readBody(req, limits));
      else req.resume();
      const message = decodeRequest(route, match.params, body, queryOf(req.url ?? ""));
      const abort = new AbortController();
      res.once("close", () => {
        if (!res.writableFinished) abort.abort(new ConnectError("the REST caller went away", Code.Canceled));
      });
      const result = await invoke(
        handlerOf.get(route)!,
        route,
        message,
        requestHeaders(req, requestId, route.forceAsync),
        deps.contextValues(req),
        abort.signal,
      );
      // Every mutation runs as an operation: its id comes back as a header.
      const operationId = result.header.get("operation-id");
      if (operationId) {
        res.setHeader("Operation-Id", operationId);
        res.setHeader("x-operation-id", operationId);
      }
      if ("error" in result) {
        const { status, body: errBody } = errorBodyOf(result.error, route.targetInBody, requestId);
        reply(res, status, errBody);
      } else if (operationId && acceptedAsync(result.message) && !route.forceAsync) {
        // Prefer: respond-async (RFC 7240): accepted, follow it at Location.
        const state = (result.message as unknown as { operation: Operation }).operation.state;
        reply(
          res,
          202,
          { operation_id: operationId, status: OPERATION_STATUS[state] ?? "queued" },
          {
            location: `/api/operations/${operationId}`,
            "retry-after": "2",
            "preference-applied": "respond-async",
          },
        );
      } else if (route.forceAsync && operationId) {
        // The ops API's job start: {job_id, status}, followed at /ops/jobs/{job_id}.
        reply(res, route.status, route.response(result.message as never), {
          location: `/ops/jobs/${operationId}`,
        });
      } else {
        reply(res, route.status, route.response(result.message as never));
      }
    } catch (err) {
      if (err instanceof RestError) return err.rest === REST_ONLY.callerGone ? undefined : refuse(err);
      deps.logger.error(
        {
          rest: `${req.method} ${path.slice(0, 200)}`,
          requestId,
          error: err instanceof Error ? err.message : String(err),
          stack: err instanceof Error ? err.stack : undefined,
        },
        "rest transcoding failed",
      );
      reply(res, 500, { detail: "internal error", error_type: "internal_error", request_id: requestId });
    }
  };

  return (req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    const segments = path.slice(1).split("/");
    if (!path.startsWith("/") || !roots.has(segments[0]!)) {
      deps.fallback(req, res);
      return;
    }
    // "/api/releases/" is "/api/releases", as FastAPI's slash redirect made it.
    if (segments.length > 1 && segments[segments.length - 1] === "") segments.pop();
    void serve(req, res, segments);
  };
}

/** acceptedAsync: the answer of an async mutation carries its operation (and no result). */
function acceptedAsync(message: Message): boolean {
  return (message as unknown as { operation?: Operation }).operation !== undefined;
}

const OPERATION_STATUS: Partial<Record<OperationState, string>> = {
  [OperationState.QUEUED]: "queued",
  [OperationState.RUNNING]: "running",
  [OperationState.SUCCEEDED]: "succeeded",
  [OperationState.FAILED]: "failed",
  [OperationState.CANCELLED]: "cancelled",
};

/** queryOf parses the query string (after the first '?'); '+' is a space, as in forms. */
function queryOf(url: string): URLSearchParams {
  const at = url.indexOf("?");
  return new URLSearchParams(at < 0 ? "" : url.slice(at + 1));
}

/** decodeSegments percent-decodes each raw segment; an encoded '/' stays inside its segment. */
function decodeSegments(raw: string[]): string[] {
  return raw.map((s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      throw new RestError(REST_ONLY.badPath, "Invalid percent-encoding in path");
    }
  });
}

/**
 * checkPathValue refuses what can never be a namespace or release name and could only be an
 * attempt at path tricks: a decoded '/' or '\', a dot segment, control characters. Everything
 * else (case, length, non-ASCII, the prefix) is the namespace-prefix interceptor's to judge.
 */
function checkPathValue(field: string, value: string): void {
  if (value === "." || value === ".." || /[/\\\x00-\x1f\x7f]/.test(value)) {
    throw new RestError(
      REST_ONLY.badPath,
      `Invalid ${field} in path: "/", "\\", "." and ".." segments and control characters are not allowed`,
    );
  }
}

function requestHeaders(req: Req, requestId: string, forceAsync = false): Headers {
  const header = new Headers({ "content-type": "application/proto", "x-request-id": requestId });
  for (const name of FORWARDED) {
    const v = req.headers[name];
    if (typeof v === "string") header.set(name, v);
  }
  if (forceAsync) header.set("prefer", "respond-async");
  return header;
}

type Outcome = ({ message: Message } | { error: ConnectError }) & { header: Headers };

/** invoke runs one unary RPC through the router's handler: Connect protocol, binary, in memory. */
async function invoke(
  h: UniversalHandler,
  route: RestRoute,
  message: Message,
  header: Headers,
  contextValues: ContextValues,
  signal: AbortSignal,
): Promise<Outcome> {
  const res = await h({
    httpVersion: "1.1",
    url: `http://in-process${h.requestPath}`,
    method: "POST",
    header,
    body: once(toBinary(route.method.input, message)),
    signal,
    contextValues,
  });
  const chunks: Uint8Array[] = [];
  if (res.body) for await (const c of res.body) chunks.push(c);
  const bytes = Buffer.concat(chunks);
  const answered = new Headers(res.header);
  if (res.status === 200) return { message: fromBinary(route.method.output, bytes), header: answered };
  const fallback = new ConnectError(`HTTP ${res.status}`, codeFromHttpStatus(res.status));
  return { error: errorFromJsonBytes(bytes, answered, fallback), header: answered };
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

function reply(res: Res, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  sendJson(res, status, body);
}
