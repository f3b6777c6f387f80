import type { KubeConfig } from "@kubernetes/client-node";
import { HttpStatusError } from "../api/api-errors.ts";
import { rawGet, readLimited } from "../api/api-http.ts";

/** WatchEvent is one line of a Kubernetes watch stream; `object` is raw JSON (a metav1.Status for ERROR). */
export interface WatchEvent<T = unknown> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T;
}

/** WatchStreamOptions tune one watch request. */
export interface WatchStreamOptions {
  /** Asks the server to end the watch after this long (client-go picks 5–10 min at random so watchers do not reconnect in step). */
  timeoutSeconds?: number;
  /**
   * Ends the stream (as if the server had) when nothing, not even a bookmark, arrives for
   * this long: catches half-open connections. The API server sends watchers that allow
   * bookmarks one about every minute, so the default of 150 s only fires on a dead link.
   */
  idleTimeoutMs?: number;
  /** Caps one line (one object) to keep a misbehaving server from growing our buffer without end. */
  maxLineBytes?: number;
}

const DEFAULT_MAX_LINE = 16 * 1024 * 1024;
const DEFAULT_IDLE_MS = 150_000;

/** randomWatchTimeout returns a server-side watch timeout between 5 and 10 minutes, like client-go's reflector. */
export function randomWatchTimeout(): number {
  return 300 + Math.floor(Math.random() * 300);
}

/**
 * watchStream opens `GET <path>?watch=1&resourceVersion=…` and yields its events until the
 * server ends the stream or it stays silent past the idle timeout (both end the
 * iteration normally: the caller resumes from the last resourceVersion). It throws
 * HttpStatusError for a non-200 answer and whatever the connection fails with. Leaving
 * the loop early, or aborting `signal`, closes the connection and clears the timer.
 */
export async function* watchStream(
  kc: KubeConfig,
  path: string,
  query: Record<string, string>,
  signal: AbortSignal,
  opts: WatchStreamOptions = {},
): AsyncGenerator<WatchEvent> {
  const params = new URLSearchParams({
    ...query,
    watch: "1",
    allowWatchBookmarks: "true",
    timeoutSeconds: String(opts.timeoutSeconds ?? randomWatchTimeout()),
  });
  const idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_MS;
  const maxLine = opts.maxLineBytes ?? DEFAULT_MAX_LINE;

  const local = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let idle = false;
  let connected = false;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      idle = true;
      local.abort(new DOMException("watch idle timeout", "TimeoutError"));
    }, idleMs);
  };
  const onAbort = () => local.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  if (signal.aborted) local.abort(signal.reason);
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  try {
    arm();
    const rsp = await rawGet(kc, `${path}?${params}`, local.signal);
    if (rsp.status !== 200) throw new HttpStatusError(rsp.status, await readLimited(rsp.body));
    if (!rsp.body) return;
    connected = true;
    reader = rsp.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      arm();
      buffered += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line) yield JSON.parse(line) as WatchEvent;
        local.signal.throwIfAborted();
      }
      if (buffered.length > maxLine) throw new Error(`watch event larger than ${maxLine} bytes`);
    }
    local.signal.throwIfAborted();
  } catch (err) {
    // A silent stream is closed like a server-side timeout (a real outage shows on
    // reconnect); a server that never answers the request is an error.
    if (idle && connected && !signal.aborted) return;
    throw err;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
    local.abort();
    await reader?.cancel().catch(() => {});
  }
}
