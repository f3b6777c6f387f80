import type { V1Pod, V1Secret } from "@kubernetes/client-node";
import type { ReleaseInfo } from "../../domain/release.ts";
import { isStorageSecret, newestStorageSecret, secretRevision } from "../storage/helm-storage.ts";
import { PodTracker } from "./pod-tracker.ts";
import type { ReleaseWatchEvent } from "../kube-types.ts";
import type { PodMatcher } from "./workload-pods.ts";

// The state behind watchRelease. Watch events only update "current" and mark a key
// dirty; events for the caller are computed when the caller asks for the next one, by
// comparing current with what was last sent. So a slow caller costs one entry per pod
// (updates to a pod coalesce) instead of an ever-growing queue, and a re-list after a
// broken watch is just another update: the caller gets exactly the differences. Keys
// stay in arrival order, so events come roughly in the order things happened.

const RELEASE_KEY = "release";
const POD_PREFIX = "pod/";

/** DecodedRelease is a storage Secret's release and the matchers of its workloads' pods. */
export interface DecodedRelease {
  release: ReleaseInfo;
  podMatchers: PodMatcher[];
}

/** DecodeRelease decodes a storage Secret; injected so that tests need no gzip. */
export type DecodeRelease = (secret: V1Secret) => Promise<DecodedRelease>;

/** ReleaseState tracks one release's pods and storage Secrets against what the caller has seen. */
export class ReleaseState {
  readonly release: string;
  private readonly decode: DecodeRelease;
  private readonly pods: PodTracker;
  private readonly secrets = new Map<string, V1Secret>();
  /** Uids of the storage Secrets present when the caller last got the release: tells an old revision (purge in progress) from a new release. */
  private uidsAtSend = new Set<string>();
  /** The last storage Secret was deleted: the release was uninstalled, whatever came after. */
  private emptied = false;
  private sentRelease: ReleaseInfo | undefined;
  private readonly dirty = new Set<string>();
  private cache: { key: string; decoded: DecodedRelease } | undefined;
  private wake: (() => void) | undefined;
  private failure: unknown;
  private failed = false;

  constructor(release: string, decode: DecodeRelease) {
    this.release = release;
    this.decode = decode;
    this.pods = new PodTracker(release, (name) => this.markDirty(POD_PREFIX + name));
  }

  /** syncPods replaces the known pods with a full list of the namespace's pods (first list or re-list). */
  syncPods(items: V1Pod[]): void {
    this.pods.sync(items);
  }

  /** podEvent applies one watch event of the namespace's pods. */
  podEvent(type: "ADDED" | "MODIFIED" | "DELETED", pod: V1Pod): void {
    this.pods.apply(type, pod);
  }

  /** syncSecrets replaces the known storage Secrets with a full list. */
  syncSecrets(items: V1Secret[]): void {
    const had = this.secrets.size > 0;
    this.secrets.clear();
    for (const s of items) this.putSecret(s);
    if (had && this.secrets.size === 0) this.emptied = true;
    this.markDirty(RELEASE_KEY);
  }

  /** secretEvent applies one watch event of the release's storage Secrets. */
  secretEvent(type: "ADDED" | "MODIFIED" | "DELETED", secret: V1Secret): void {
    const name = secret.metadata?.name;
    if (!name) return;
    if (type === "DELETED") {
      if (this.secrets.delete(name) && this.secrets.size === 0) this.emptied = true;
    } else {
      this.putSecret(secret);
    }
    this.markDirty(RELEASE_KEY);
  }

  private putSecret(s: V1Secret): void {
    const name = s.metadata?.name;
    if (!name || !isStorageSecret(s) || s.metadata?.labels?.["name"] !== this.release) return;
    this.secrets.set(name, s);
  }

  /** snapshot returns the current state as the first event and records it as sent. */
  async snapshot(): Promise<ReleaseWatchEvent & { kind: "snapshot" }> {
    const newest = newestStorageSecret(this.secrets.values());
    this.recordSent(newest ? await this.decodeCached(newest) : undefined);
    const pods = this.pods.snapshot();
    this.dirty.clear();
    return { kind: "snapshot", release: this.sentRelease, pods };
  }

  /**
   * next returns the next event for the caller, or undefined when nothing visible
   * changed (a pod update that summarises the same, a Secret write of the same status).
   * Throws what fail() recorded.
   */
  async next(): Promise<ReleaseWatchEvent | undefined> {
    while (!this.failed) {
      const key = this.dirty.values().next().value;
      if (key === undefined) return undefined;
      this.dirty.delete(key);
      const ev = key === RELEASE_KEY ? await this.releaseEvent() : this.pods.eventFor(key.slice(POD_PREFIX.length));
      if (ev) return ev;
    }
    throw this.failure;
  }

  private async releaseEvent(): Promise<ReleaseWatchEvent | undefined> {
    if (this.emptied) return { kind: "release_uninstalled" };
    const newest = newestStorageSecret(this.secrets.values());
    if (!newest) return undefined;
    const sent = this.sentRelease;
    if (sent && secretRevision(newest) < sent.revision) {
      // Helm purges an uninstalled release one revision at a time, in no particular order:
      // an older revision we have already seen is the purge in progress. A lower revision
      // we have never seen means the release was uninstalled and installed again.
      const uid = newest.metadata?.uid;
      return uid !== undefined && this.uidsAtSend.has(uid) ? undefined : { kind: "release_uninstalled" };
    }
    const decoded = await this.decodeCached(newest);
    const info = decoded.release;
    if (info.status === "uninstalled") {
      // Uninstalled with --keep-history. Already so at the snapshot: nothing happened.
      if (sent?.status === "uninstalled" && sent.revision === info.revision) return undefined;
      return { kind: "release_uninstalled" };
    }
    if (sent && sent.revision === info.revision && sent.status === info.status) return undefined;
    this.recordSent(decoded);
    return { kind: "release_changed", release: info };
  }

  private recordSent(decoded: DecodedRelease | undefined): void {
    this.sentRelease = decoded?.release;
    if (decoded) this.pods.useMatchers(decoded.podMatchers);
    this.uidsAtSend = new Set([...this.secrets.values()].flatMap((s) => (s.metadata?.uid ? [s.metadata.uid] : [])));
  }

  private async decodeCached(s: V1Secret): Promise<DecodedRelease> {
    const key = `${s.metadata?.uid}/${s.metadata?.resourceVersion}`;
    if (this.cache?.key !== key) this.cache = { key, decoded: await this.decode(s) };
    return this.cache.decoded;
  }

  /** fail makes the next call of next() throw `err` (a list-watch loop gave up). */
  fail(err: unknown): void {
    this.failed = true;
    this.failure = err;
    this.wake?.();
  }

  /** changed resolves at the next update (or failure), or when the signal aborts. */
  changed(signal: AbortSignal): Promise<void> {
    if (this.dirty.size > 0 || this.failed || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        signal.removeEventListener("abort", done);
        this.wake = undefined;
        resolve();
      };
      this.wake = done;
      signal.addEventListener("abort", done, { once: true });
    });
  }

  private markDirty(key: string): void {
    this.dirty.add(key);
    this.wake?.();
  }
}
