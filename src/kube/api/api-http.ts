import {
  CoreV1Api,
  createConfiguration,
  HttpMethod,
  IsomorphicFetchHttpLibrary,
  type KubeConfig,
  type Middleware,
  RequestContext,
  ServerConfiguration,
} from "@kubernetes/client-node";
import { HttpStatusError } from "./api-errors.ts";

// client-node's generated API has no per-request timeout and its Watch class only
// returns its AbortController once the response headers are in, so a watch being set
// up cannot be cancelled. Both problems are solved here with client-node's own request
// plumbing (RequestContext + its fetch-based HttpLibrary), which accepts an AbortSignal.

const USER_AGENT = "paas-operator";

// client-node builds a new undici Agent (connection pool) for every request, so each call
// paid a TCP and TLS handshake. The first dispatcher made for a kubeconfig is kept and
// reused: same TLS settings (CA, client certificate), pooled keep-alive connections.
// Credentials that change (exec plugins, in-cluster token files) travel in headers, which
// client-node still sets per request.
const dispatchers = new WeakMap<KubeConfig, unknown>();

/** reuseDispatcher swaps the request's fresh dispatcher for the kubeconfig's shared one. */
function reuseDispatcher(kc: KubeConfig, ctx: RequestContext): void {
  const fresh = ctx.getDispatcher();
  if (fresh === undefined) return;
  if (!dispatchers.has(kc)) dispatchers.set(kc, fresh);
  ctx.setDispatcher(dispatchers.get(kc) as typeof fresh);
}

/** createCoreApi builds a CoreV1Api whose every request is aborted after `timeoutMs` (headers and body included). */
export function createCoreApi(kc: KubeConfig, timeoutMs: number): CoreV1Api {
  return createApi(kc, timeoutMs, CoreV1Api);
}

/** ApiClass is one of client-node's generated API groups (CoreV1Api, RbacAuthorizationV1Api, …). */
export type ApiClass<T> = new (config: ReturnType<typeof createConfiguration>) => T;

/** createApi builds any generated API group with the same per-request deadline and User-Agent as createCoreApi. */
export function createApi<T>(kc: KubeConfig, timeoutMs: number, api: ApiClass<T>): T {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("kubeconfig has no current cluster");
  // client-node's exported Middleware is the Promise-style one; createConfiguration wraps it.
  const deadline: Middleware = {
    pre: async (ctx) => {
      ctx.setHeaderParam("User-Agent", USER_AGENT);
      reuseDispatcher(kc, ctx);
      ctx.setSignal(AbortSignal.timeout(timeoutMs));
      return ctx;
    },
    post: async (rsp) => rsp,
  };
  const config = createConfiguration({
    baseServer: new ServerConfiguration<Record<string, string>>(cluster.server, {}),
    authMethods: { default: kc },
    promiseMiddleware: [deadline],
  });
  return new api(config);
}

/** RawResponse is an API answer whose body has not been read yet. */
export interface RawResponse {
  status: number;
  body: ReadableStream<Uint8Array> | null;
}

/**
 * rawGet sends an authenticated GET for `path` (query included) and returns the
 * response unread; the signal aborts both the request and the body stream.
 */
export async function rawGet(
  kc: KubeConfig,
  path: string,
  signal: AbortSignal,
  accept = "application/json",
): Promise<RawResponse> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("kubeconfig has no current cluster");
  const ctx = new RequestContext(cluster.server.replace(/\/+$/, "") + path, HttpMethod.GET);
  ctx.setHeaderParam("Accept", accept);
  ctx.setHeaderParam("User-Agent", USER_AGENT);
  await kc.applySecurityAuthentication(ctx);
  reuseDispatcher(kc, ctx);
  signal.throwIfAborted();
  ctx.setSignal(signal);
  const rsp = await new IsomorphicFetchHttpLibrary().send(ctx).toPromise();
  return { status: rsp.httpStatusCode, body: rsp.body.stream() };
}

/** readLimited reads at most `limit` bytes of a body as text, then cancels the rest (error bodies are small; never trust that). */
export async function readLimited(body: ReadableStream<Uint8Array> | null, limit = 64 * 1024): Promise<string> {
  if (!body) return "";
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < limit) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return Buffer.concat(chunks).subarray(0, limit).toString("utf8");
}

/** getJson GETs `path` and parses the JSON answer; a non-2xx answer becomes an HttpStatusError carrying the Status body. */
export async function getJson(kc: KubeConfig, path: string, signal: AbortSignal, accept?: string): Promise<unknown> {
  const rsp = await rawGet(kc, path, signal, accept);
  const text = await readLimited(rsp.body, 4 * 1024 * 1024);
  if (rsp.status < 200 || rsp.status > 299) throw new HttpStatusError(rsp.status, text);
  return JSON.parse(text);
}
