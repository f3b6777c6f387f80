import { httpCodeOf, statusOf } from "../api/api-errors.ts";
import type { WatchEvent } from "./watch-stream.ts";
import { metrics } from "../../metrics/metrics.ts";

/** WatchSource lists a collection and watches it from a resourceVersion; the client binds it to one resource and selector. */
export interface WatchSource<T> {
  list(signal: AbortSignal): Promise<{ items: T[]; resourceVersion: string }>;
  watch(resourceVersion: string, signal: AbortSignal): AsyncIterable<WatchEvent>;
}

/** ListWatchHandlers receive the collection's state: a full replacement after each (re)list, then single changes. */
export interface ListWatchHandlers<T> {
  /** The complete current collection, after the first list and after every re-list (the caller diffs). */
  onSync(items: T[]): void;
  onEvent(type: "ADDED" | "MODIFIED" | "DELETED", object: T): void;
}

/** Backoff bounds the pause between failed attempts. */
export interface Backoff {
  initialMs: number;
  maxMs: number;
  /** Consecutive failures (no event got through in between) after which runListWatch gives up. */
  maxFailures: number;
}

/** DEFAULT_BACKOFF doubles from 0.5 s to 30 s and gives up after 12 failures in a row (about 4 minutes). */
export const DEFAULT_BACKOFF: Backoff = { initialMs: 500, maxMs: 30_000, maxFailures: 12 };

/** backoffDelay returns the pause before attempt `failures` (1-based): exponential, capped, with ±20 % jitter. */
export function backoffDelay(failures: number, b: Backoff, random = Math.random): number {
  const base = Math.min(b.maxMs, b.initialMs * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** sleep waits `ms` or until the signal aborts (then resolves early); it leaves no timer behind. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

function resourceVersionOf(obj: unknown): string | undefined {
  const rv = (obj as { metadata?: { resourceVersion?: unknown } } | null)?.metadata?.resourceVersion;
  return typeof rv === "string" && rv !== "" ? rv : undefined;
}

/**
 * runListWatch keeps `handlers` in step with a collection until `signal` aborts: it
 * watches from `startResourceVersion` (or lists first when none is given), resumes
 * from the last seen resourceVersion when a watch ends or breaks, and re-lists when
 * the server says that version is gone (410). Failures back off; after
 * `backoff.maxFailures` in a row it rejects with the last error. Resolves on abort.
 */
export async function runListWatch<T>(
  source: WatchSource<T>,
  handlers: ListWatchHandlers<T>,
  signal: AbortSignal,
  opts: { startResourceVersion?: string; backoff?: Backoff; onRetry?: (err: unknown, delayMs: number) => void } = {},
): Promise<void> {
  metrics.kubeWatches.inc();
  try {
    await listWatchLoop(source, handlers, signal, opts);
  } finally {
    metrics.kubeWatches.dec();
  }
}

async function listWatchLoop<T>(
  source: WatchSource<T>,
  handlers: ListWatchHandlers<T>,
  signal: AbortSignal,
  opts: { startResourceVersion?: string; backoff?: Backoff; onRetry?: (err: unknown, delayMs: number) => void },
): Promise<void> {
  const backoff = opts.backoff ?? DEFAULT_BACKOFF;
  let rv = opts.startResourceVersion;
  let failures = 0;
  let lists = 0;
  while (!signal.aborted) {
    try {
      if (rv === undefined) {
        if (lists++ > 0 || opts.startResourceVersion !== undefined) metrics.kubeRelists.inc();
        const listed = await source.list(signal);
        handlers.onSync(listed.items);
        rv = listed.resourceVersion;
      }
      const started = Date.now();
      let events = 0;
      for await (const ev of source.watch(rv, signal)) {
        events++;
        if (ev.type === "ERROR") {
          const status = ev.object as { code?: number };
          if (status?.code === 410) {
            // Expired: what we missed is only recoverable by listing again.
            rv = undefined;
            break;
          }
          throw Object.assign(new Error(`watch error ${status?.code ?? "?"}`), { status });
        }
        rv = resourceVersionOf(ev.object) ?? rv;
        failures = 0;
        if (ev.type !== "BOOKMARK") handlers.onEvent(ev.type, ev.object as T);
      }
      // A clean end is normally the server-side timeout: resume from rv at once. A server
      // that hangs up at once, again and again, must not make us spin.
      if (rv !== undefined && events === 0 && Date.now() - started < 1000) throw new Error("watch closed immediately");
      // It was up and served: earlier failures are over.
      failures = 0;
    } catch (err) {
      if (signal.aborted) return;
      if (httpCodeOf(err) === 410 || statusOf(err).code === 410) {
        rv = undefined;
        continue;
      }
      failures++;
      if (failures >= backoff.maxFailures) throw err;
      const delay = backoffDelay(failures, backoff);
      opts.onRetry?.(err, delay);
      await sleep(delay, signal);
    }
  }
}
