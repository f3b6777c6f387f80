import { createHash } from "node:crypto";
import { readFileSync, watch, type FSWatcher } from "node:fs";
import { dirname } from "node:path";
import type { Logger } from "pino";
import { patternProblem } from "../auth/scopes.ts";
import { WEBHOOK_EVENT_TYPES, type WebhookEventType } from "../domain/webhook.ts";
import { addressProblem } from "./address-guard.ts";

/**
 * The WEBHOOKS_FILE format (JSON):
 *
 *   {"subscriptions": [
 *     {"id": "erp", "url": "https://erp.example.com/hooks/paas",
 *      "secrets": ["whsec_<base64 of 24..64 bytes>", …],
 *      "events": ["operation.succeeded", "operation.failed"],
 *      "namespaces": ["paas-ws-acme", "paas-ws-team-*"]}
 *   ]}
 *
 * or the bare array. Every mistake is reported by entry index, id and field name — never with
 * a secret in the message, since the message is logged.
 */

export interface Subscription {
  id: string;
  url: string;
  /** `whsec_…`; every one signs each attempt (rotation). */
  secrets: string[];
  events: WebhookEventType[];
  /** Exact names, prefixes ending in '*', or '*'. */
  namespaces: string[];
}

export class WebhookFileError extends Error {
  override name = "WebhookFileError";
}

export interface ParseOptions {
  /** The namespace prefix every pattern must be able to match. */
  prefix: string;
  /** Loopback endpoints (127.0.0.0/8, ::1, localhost) are refused unless this is set. */
  allowLoopback: boolean;
}

const ID = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const SECRET = /^whsec_([A-Za-z0-9+/]+={0,2})$/;
const FIELDS = new Set(["id", "url", "secrets", "events", "namespaces"]);

/** parseWebhookFile parses and validates the whole file; any mistake rejects the whole file. */
export function parseWebhookFile(text: string, opts: ParseOptions): Subscription[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new WebhookFileError("is not valid JSON");
  }
  const list = Array.isArray(parsed)
    ? parsed
    : ((parsed as { subscriptions?: unknown } | null)?.subscriptions ?? undefined);
  if (!Array.isArray(list)) throw new WebhookFileError('must be {"subscriptions": [...]} or a list of subscriptions');
  const seen = new Set<string>();
  return list.map((entry, i) => {
    const sub = parseEntry(entry, i, opts);
    if (seen.has(sub.id)) throw new WebhookFileError(`subscription ${i} ("${sub.id}"): the id is used twice`);
    seen.add(sub.id);
    return sub;
  });
}

function parseEntry(entry: unknown, i: number, opts: ParseOptions): Subscription {
  if (typeof entry !== "object" || entry === null || Array.isArray(entry))
    throw new WebhookFileError(`subscription ${i} must be an object`);
  const o = entry as Record<string, unknown>;
  const id = typeof o.id === "string" ? o.id : "";
  if (!ID.test(id))
    throw new WebhookFileError(
      `subscription ${i}: "id" must be 1-63 lowercase letters, digits, '.', '_' or '-', starting alphanumeric`,
    );
  const at = `subscription ${i} ("${id}")`;
  for (const k of Object.keys(o)) if (!FIELDS.has(k)) throw new WebhookFileError(`${at}: unknown field "${k}"`);
  if (typeof o.url !== "string") throw new WebhookFileError(`${at}: "url" must be a string`);
  const url = checkUrl(o.url, at, opts.allowLoopback);
  if (!Array.isArray(o.secrets) || o.secrets.length === 0 || o.secrets.length > 8)
    throw new WebhookFileError(`${at}: "secrets" must be a list of 1 to 8 whsec_ secrets`);
  const secrets = o.secrets.map((s, j) => {
    const m = typeof s === "string" ? SECRET.exec(s) : null;
    if (!m) throw new WebhookFileError(`${at}: secrets[${j}] must be "whsec_" followed by base64`);
    const bytes = Buffer.from(m[1]!, "base64").length;
    if (bytes < 24 || bytes > 64)
      throw new WebhookFileError(`${at}: secrets[${j}] must hold 24 to 64 bytes (it holds ${bytes})`);
    return s as string;
  });
  if (!Array.isArray(o.events) || o.events.length === 0)
    throw new WebhookFileError(`${at}: "events" must be a non-empty list of ${WEBHOOK_EVENT_TYPES.join(", ")}`);
  const events = o.events.map((e, j) => {
    if (typeof e !== "string" || !(WEBHOOK_EVENT_TYPES as readonly string[]).includes(e))
      throw new WebhookFileError(
        `${at}: events[${j}] ${JSON.stringify(e)} is unknown (${WEBHOOK_EVENT_TYPES.join(", ")})`,
      );
    return e as WebhookEventType;
  });
  if (!Array.isArray(o.namespaces) || o.namespaces.length === 0)
    throw new WebhookFileError(`${at}: "namespaces" must be a non-empty list of names, prefixes ending in '*', or '*'`);
  const namespaces = o.namespaces.map((p, j) => {
    const problem = typeof p === "string" ? patternProblem(p, opts.prefix) : "must be a string";
    if (problem) throw new WebhookFileError(`${at}: namespaces[${j}] ${problem}`);
    return p as string;
  });
  return { id, url, secrets, events: [...new Set(events)], namespaces };
}

function checkUrl(raw: string, at: string, allowLoopback: boolean): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new WebhookFileError(`${at}: "url" is not a URL`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:")
    throw new WebhookFileError(`${at}: "url" must be http:// or https://`);
  if (u.username || u.password) throw new WebhookFileError(`${at}: "url" must not hold credentials`);
  if (u.hash) throw new WebhookFileError(`${at}: "url" must not have a #fragment`);
  const problem = addressProblem(u.hostname, allowLoopback);
  if (problem) throw new WebhookFileError(`${at}: "url" points at ${problem}, which is refused`);
  return u.href;
}

/** matchesNamespace: exact name, prefix ending in '*', or '*'. */
export function matchesNamespace(patterns: readonly string[], namespace: string): boolean {
  return patterns.some((p) =>
    p === "*" ? true : p.endsWith("*") ? namespace.startsWith(p.slice(0, -1)) : p === namespace,
  );
}

export interface SubscriptionRegistryOptions {
  /** WEBHOOKS_FILE: reloaded when its directory changes. */
  file?: string;
  /** The subscriptions read at start (already validated); read from `file` when absent. */
  subscriptions?: Subscription[];
  parse: ParseOptions;
}

/**
 * SubscriptionRegistry holds the configured subscriptions; the file is reloaded when it
 * changes, and a broken file keeps the previous subscriptions (and logs why, never a secret).
 */
export class SubscriptionRegistry {
  readonly file: string | undefined;
  private readonly parse: ParseOptions;
  private subs: Subscription[];
  private digest: string;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(opts: SubscriptionRegistryOptions) {
    this.file = opts.file;
    this.parse = opts.parse;
    this.subs = opts.subscriptions ?? (opts.file ? this.read(opts.file) : []);
    this.digest = digestOf(this.subs);
  }

  get all(): readonly Subscription[] {
    return this.subs;
  }

  get(id: string): Subscription | undefined {
    return this.subs.find((s) => s.id === id);
  }

  /** reload re-reads the file: true when the subscriptions were replaced. */
  reload(logger?: Logger): boolean {
    if (!this.file) return false;
    let subs: Subscription[];
    try {
      subs = this.read(this.file);
    } catch (err) {
      const reason = err instanceof WebhookFileError ? err.message : "cannot be read";
      logger?.error({ file: this.file, error: reason }, "WEBHOOKS_FILE is invalid; keeping the previous subscriptions");
      return false;
    }
    const digest = digestOf(subs);
    if (digest === this.digest) return false;
    this.digest = digest;
    this.subs = subs;
    logger?.info({ file: this.file, subscriptions: subs.map((s) => s.id) }, "webhook subscriptions reloaded");
    return true;
  }

  /** watch reloads the file when its directory changes (a Secret volume swaps a symlink), debounced. */
  watch(logger: Logger, debounceMs = 500): void {
    if (!this.file || this.watcher || this.closed) return;
    const dir = dirname(this.file);
    const start = () => {
      if (this.closed) return;
      try {
        this.watcher = watch(dir, { persistent: false }, () => this.schedule(logger, debounceMs));
        this.watcher.on("error", () => {
          logger.error({ dir }, "watching WEBHOOKS_FILE's directory failed; retrying");
          this.watcher?.close();
          this.watcher = undefined;
          setTimeout(start, Math.max(1000, debounceMs)).unref();
        });
      } catch {
        logger.error({ dir }, "cannot watch WEBHOOKS_FILE's directory; retrying");
        setTimeout(start, Math.max(1000, debounceMs)).unref();
        return;
      }
      this.schedule(logger, debounceMs);
    };
    start();
  }

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

  private read(file: string): Subscription[] {
    return parseWebhookFile(readFileSync(file, "utf8"), this.parse);
  }
}

function digestOf(subs: readonly Subscription[]): string {
  return createHash("sha256").update(JSON.stringify(subs)).digest("hex");
}
