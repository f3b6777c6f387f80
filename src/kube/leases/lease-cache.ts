import type { V1Lease } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { DEFAULT_BACKOFF, runListWatch, sleep, type Backoff, type WatchSource } from "../watch/list-watch.ts";

/** UNKNOWN: the cache cannot answer (not synced yet, or its watch is broken); read the API. */
export const UNKNOWN = Symbol("unknown");

/**
 * LeaseCache keeps the Leases of one namespace in memory through a list-watch, so that
 * GetRelease and GetReleaseStatus can show `locked_by` without a request of their own.
 * While the watch is down it answers UNKNOWN and callers read the Lease directly: a stale
 * holder is never reported as current.
 */
export class LeaseCache {
  readonly #source: WatchSource<V1Lease>;
  readonly #logger: Logger;
  readonly #backoff: Backoff;
  readonly #abort = new AbortController();
  readonly #leases = new Map<string, V1Lease>();
  #synced = false;
  #running: Promise<void> | undefined;

  constructor(source: WatchSource<V1Lease>, logger: Logger, backoff: Backoff = DEFAULT_BACKOFF) {
    this.#source = source;
    this.#logger = logger;
    this.#backoff = backoff;
  }

  /** start begins the list-watch; it keeps retrying (with backoff) until stop(). */
  start(): void {
    this.#running ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#running;
  }

  /** get returns the cached Lease, undefined when there is none, or UNKNOWN when the cache cannot tell. */
  get(name: string): V1Lease | undefined | typeof UNKNOWN {
    return this.#synced ? this.#leases.get(name) : UNKNOWN;
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    let failures = 0;
    while (!signal.aborted) {
      // One list-watch until its first failure: then the cache answers UNKNOWN, and the next
      // round lists afresh (Leases are few), which is what makes it answer again.
      const round = new AbortController();
      const stopRound = () => round.abort();
      signal.addEventListener("abort", stopRound, { once: true });
      let failed: unknown;
      try {
        await runListWatch(
          this.#source,
          {
            onSync: (items) => {
              this.#leases.clear();
              for (const l of items) if (l.metadata?.name) this.#leases.set(l.metadata.name, l);
              this.#synced = true;
              failures = 0;
            },
            onEvent: (type, lease) => {
              const name = lease.metadata?.name;
              if (!name) return;
              if (type === "DELETED") this.#leases.delete(name);
              else this.#leases.set(name, lease);
            },
          },
          round.signal,
          {
            backoff: this.#backoff,
            onRetry: (err) => {
              failed = err;
              round.abort();
            },
          },
        );
      } catch (err) {
        failed = err;
      } finally {
        signal.removeEventListener("abort", stopRound);
      }
      this.#synced = false;
      if (signal.aborted) break;
      failures++;
      this.#logger.debug(
        { err: failed instanceof Error ? failed.message : String(failed), failures },
        "lease watch interrupted; listing again",
      );
      await sleep(Math.min(this.#backoff.maxMs, this.#backoff.initialMs * 2 ** Math.min(failures - 1, 16)), signal);
    }
  }
}
