import type { V1Pod, V1Secret } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { type Backoff, DEFAULT_BACKOFF, runListWatch, type WatchSource } from "./list-watch.ts";
import { type DecodeRelease, ReleaseState } from "./release-watch-state.ts";
import type { ReleaseWatchEvent } from "../kube-types.ts";

/** ReleaseWatchDeps are the collections watchRelease follows, already bound to the release's namespace. */
export interface ReleaseWatchDeps {
  /** All pods of the namespace (filtered here by isReleasePod, so that one watch covers both label schemes). */
  pods: WatchSource<V1Pod>;
  /** The release's storage Secrets (owner=helm,name=<release>). */
  secrets: WatchSource<V1Secret>;
  decode: DecodeRelease;
  logger: Pick<Logger, "debug" | "warn">;
  backoff?: Backoff;
  /** How long closing may wait for the watch connections to wind down. */
  closeTimeoutMs?: number;
}

/**
 * watchReleaseEvents yields a snapshot of the release and its pods, then one event per
 * visible change, until `signal` aborts (it then returns quietly) or the release is
 * uninstalled (release_uninstalled is the last event). Broken or expired watches are
 * resumed or re-listed in the background; if that keeps failing the generator throws
 * the last error. However it ends, its watch connections are closed before it returns.
 */
export async function* watchReleaseEvents(
  deps: ReleaseWatchDeps,
  release: string,
  signal: AbortSignal,
): AsyncGenerator<ReleaseWatchEvent> {
  // Our own controller: the background loops must stop also when the caller just stops
  // iterating (return() from a for-await break) without aborting its signal.
  const inner = new AbortController();
  const onAbort = () => inner.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  if (signal.aborted) inner.abort(signal.reason);
  const loops: Promise<void>[] = [];
  try {
    if (inner.signal.aborted) return;
    const state = new ReleaseState(release, deps.decode);
    const [pods, secrets] = await Promise.all([deps.pods.list(inner.signal), deps.secrets.list(inner.signal)]);
    state.syncPods(pods.items);
    state.syncSecrets(secrets.items);
    const snapshot = await state.snapshot();
    if (inner.signal.aborted) return;

    const backoff = deps.backoff ?? DEFAULT_BACKOFF;
    const onRetry = (what: string) => (err: unknown, delayMs: number) =>
      deps.logger.debug({ err, release, delayMs }, `${what} watch broke, retrying`);
    const follow = <T>(
      what: string,
      source: WatchSource<T>,
      rv: string,
      sync: (items: T[]) => void,
      apply: (t: "ADDED" | "MODIFIED" | "DELETED", o: T) => void,
    ) =>
      runListWatch(source, { onSync: sync, onEvent: apply }, inner.signal, {
        startResourceVersion: rv,
        backoff,
        onRetry: onRetry(what),
      }).catch((err: unknown) => {
        deps.logger.warn({ err, release }, `${what} watch gave up`);
        state.fail(err);
      });
    loops.push(
      follow(
        "pod",
        deps.pods,
        pods.resourceVersion,
        (i) => state.syncPods(i),
        (t, o) => state.podEvent(t, o),
      ),
      follow(
        "secret",
        deps.secrets,
        secrets.resourceVersion,
        (i) => state.syncSecrets(i),
        (t, o) => state.secretEvent(t, o),
      ),
    );

    yield snapshot;
    while (!inner.signal.aborted) {
      const ev = await state.next();
      if (inner.signal.aborted) return;
      if (ev === undefined) {
        await state.changed(inner.signal);
        continue;
      }
      yield ev;
      if (ev.kind === "release_uninstalled") return;
    }
  } catch (err) {
    // A list or watch that fails because we are closing is not an error.
    if (inner.signal.aborted) return;
    throw err;
  } finally {
    signal.removeEventListener("abort", onAbort);
    inner.abort();
    await settle(loops, deps.closeTimeoutMs ?? 5_000);
  }
}

// Waits for the loops to notice the abort, but never hangs a closing stream on them.
async function settle(loops: Promise<void>[], timeoutMs: number): Promise<void> {
  if (loops.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.allSettled(loops),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    }),
  ]);
  clearTimeout(timer);
}
