import { readFileSync, watch, type FSWatcher } from "node:fs";
import { createHash, timingSafeEqual } from "node:crypto";
import { basename, dirname } from "node:path";
import type { Logger } from "pino";
import { KeyFileError, parseKeyFile, sha256, staticKeyId, type NamedKey } from "./key-file.ts";
import { Scope } from "./scopes.ts";

/** Identity is who a presented key belongs to: its id (never the key) and its scope. */
export interface Identity {
  id: string;
  scope: Scope;
}

interface StoredKey extends Identity {
  digest: Buffer;
}

export interface KeyStoreOptions {
  /** Unscoped keys (API_KEY, API_KEY_FILE): every namespace, every verb; never reloaded. */
  staticKeys: readonly string[];
  /** The scoped keys read from `file` at start (already validated), if any. */
  namedKeys?: readonly NamedKey[];
  /** API_KEYS_FILE: reloaded when its directory changes (see watch). */
  file?: string;
  /** The namespace prefix, which every namespace pattern must be able to match. */
  prefix: string;
}

/** DEFAULT_RELOAD_DEBOUNCE_MS: a Secret update is several directory events within milliseconds. */
export const DEFAULT_RELOAD_DEBOUNCE_MS = 500;

/**
 * KeyStore holds the accepted API keys as SHA-256 digests only and identifies presented keys
 * in constant time. Scoped keys come from API_KEYS_FILE and are replaced when the file
 * changes; a broken file keeps the previous keys (and logs why, never a key).
 */
export class KeyStore {
  /** No key source at all (development with ALLOW_UNAUTHENTICATED): every caller is anonymous. */
  readonly open: boolean;
  readonly file: string | undefined;
  private readonly prefix: string;
  private readonly staticKeys: StoredKey[];
  private named: StoredKey[];
  private fileDigest = "";
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: KeyStoreOptions) {
    this.prefix = options.prefix;
    this.file = options.file;
    this.staticKeys = options.staticKeys.map((key) => {
      const digest = sha256(key);
      return { id: staticKeyId(digest), digest, scope: Scope.ALL };
    });
    const named = options.namedKeys ?? (options.file ? this.read(options.file) : []);
    this.assertNoClash(named);
    this.named = named.map((k) => ({ ...k }));
    this.fileDigest = digestOf(named);
    this.open = options.staticKeys.length === 0 && options.file === undefined && named.length === 0;
  }

  /** identify returns the identity of the matching key, or undefined; every stored key is compared. */
  identify(presented: string): Identity | undefined {
    const digest = sha256(presented);
    let match: StoredKey | undefined;
    // Equal-length digests make timingSafeEqual applicable whatever the presented length;
    // no early exit, so the time does not depend on which key matched.
    for (const key of [...this.staticKeys, ...this.named]) {
      if (timingSafeEqual(key.digest, digest)) match = key;
    }
    return match && { id: match.id, scope: match.scope };
  }

  get size(): number {
    return this.staticKeys.length + this.named.length;
  }

  /** ids lists the ids of the scoped keys (for logs and tests). */
  get namedIds(): string[] {
    return this.named.map((k) => k.id);
  }

  /**
   * reload re-reads API_KEYS_FILE. It returns true when the keys were replaced, false when the
   * file is unchanged or broken (then the previous keys stay and the reason is logged).
   */
  reload(logger?: Logger): boolean {
    if (!this.file) return false;
    let keys: NamedKey[];
    try {
      keys = this.read(this.file);
      this.assertNoClash(keys);
    } catch (err) {
      const reason = err instanceof KeyFileError ? err.message : "cannot be read";
      logger?.error({ file: this.file, error: reason }, "API_KEYS_FILE is invalid; keeping the previous keys");
      return false;
    }
    const before = this.fileDigest;
    this.fileDigest = digestOf(keys);
    if (before === this.fileDigest) return false;
    this.named = keys.map((k) => ({ ...k }));
    logger?.info({ file: this.file, keys: keys.map((k) => k.id) }, "API keys reloaded");
    return true;
  }

  /**
   * watch reloads the file when its DIRECTORY changes: Kubernetes updates a Secret volume by
   * swapping the `..data` symlink, which the mounted file's own inode never sees (a subPath
   * mount is never updated at all). Events are debounced; the watcher does not keep the
   * process alive. A watcher failure is logged and the watch is set up again.
   */
  watch(logger: Logger, debounceMs = DEFAULT_RELOAD_DEBOUNCE_MS): void {
    if (!this.file || this.watcher || this.closed) return;
    const dir = dirname(this.file);
    const start = () => {
      if (this.closed) return;
      try {
        this.watcher = watch(dir, { persistent: false }, () => this.schedule(logger, debounceMs));
        this.watcher.on("error", (err) => {
          logger.error(
            { dir, error: (err as NodeJS.ErrnoException).code ?? "error" },
            "watching API_KEYS_FILE's directory failed; retrying",
          );
          this.watcher?.close();
          this.watcher = undefined;
          setTimeout(start, Math.max(1000, debounceMs)).unref();
        });
      } catch (err) {
        logger.error(
          { dir, error: (err as NodeJS.ErrnoException).code ?? "error" },
          "cannot watch API_KEYS_FILE's directory; retrying",
        );
        setTimeout(start, Math.max(1000, debounceMs)).unref();
        return;
      }
      // Changes between the start-up read and this point are picked up too.
      this.schedule(logger, debounceMs);
    };
    logger.debug({ dir, file: basename(this.file) }, "watching API_KEYS_FILE");
    start();
  }

  /** close stops watching. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.watcher?.close();
    this.watcher = undefined;
  }

  private schedule(logger: Logger, debounceMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (!this.closed) this.reload(logger);
    }, debounceMs);
    this.timer.unref();
  }

  private read(file: string): NamedKey[] {
    return parseKeyFile(readFileSync(file, "utf8"), this.prefix);
  }

  // A key both unscoped (API_KEY) and scoped would make its scope ambiguous.
  private assertNoClash(keys: readonly NamedKey[]): void {
    for (const k of keys) {
      if (this.staticKeys.some((s) => s.digest.equals(k.digest))) {
        throw new KeyFileError(`key "${k.id}" is also configured as an unscoped key (API_KEY or API_KEY_FILE)`);
      }
    }
  }
}

// What the keys are, so that an event that changed nothing does not log a reload.
function digestOf(keys: readonly NamedKey[]): string {
  const h = createHash("sha256");
  for (const k of keys)
    h.update(JSON.stringify([k.id, k.digest.toString("hex"), k.scope.namespaces, [...k.scope.verbs].sort()]));
  return h.digest("hex");
}
