import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { KeyFileError, keyProblem, parseKeyFile, sha256, type NamedKey } from "./auth/key-file.ts";
import { CatalogError, ChartCatalog, parseCatalog, type CatalogSource } from "./catalog/catalog.ts";
import { isDnsLabelPrefix } from "./domain/names.ts";
import { isPodSecurityLevel, POD_SECURITY_LEVELS, type PodSecurityLevel } from "./domain/pod-security-levels.ts";
import { DEFAULT_VALUES_LIMITS, type ValuesLimits } from "./domain/validation.ts";
import { DEFAULT_INGRESS_NAMESPACE_SELECTOR, parseNamespaceSelector } from "./kube/tenancy/namespaces.ts";
import { DEFAULT_SCHEDULE_MS, parseDurationMs, parseSchedule } from "./webhooks/schedule.ts";
import { parseWebhookFile, WebhookFileError, type Subscription } from "./webhooks/subscriptions.ts";

/** Config is the service's whole configuration, read from the environment once at start. */
export interface Config {
  /** Accepted API keys; empty only when allowUnauthenticated is set. */
  apiKeys: string[];
  allowUnauthenticated: boolean;
  host: string;
  port: number;
  /** METRICS_PORT: /metrics on its own port; undefined: on `port`, without a key. */
  metricsPort: number | undefined;
  logLevel: string;
  namespacePrefix: string;
  helmBinary: string;
  /** Default helm --timeout, seconds. */
  helmTimeoutSeconds: number;
  /** Upper bound a request may ask for, seconds. */
  maxHelmTimeoutSeconds: number;
  /** Helm operations on different releases that may run at once. */
  helmConcurrency: number;
  /** Largest request body accepted, bytes. */
  maxBodyBytes: number;
  /** Chart repositories callers may name as `repo/chart`: name → URL. */
  repositories: Record<string, string>;
  /** OCI registries (host:port) reached over plain HTTP, e.g. a local test registry. */
  plainHttpRegistries: string[];
  /** How often Helm and the Kubernetes API are probed for the health service, ms. */
  healthIntervalMs: number;
  /** How long SIGTERM waits for running calls and helm processes before exiting, ms. */
  shutdownGraceMs: number;
  /** API_KEYS_FILE: scoped keys, reloaded when the file changes. */
  apiKeysFile: string | undefined;
  /** The scoped keys API_KEYS_FILE held at start (digests only). */
  namedKeys: NamedKey[];
  /** The chart sources callers may use (CHART_CATALOG_FILE, CHART_CATALOG, HELM_REPOSITORIES). */
  catalog: ChartCatalog;
  /** Limits on a request's values (VALUES_MAX_BYTES, VALUES_MAX_DEPTH, VALUES_MAX_KEYS). */
  valuesLimits: ValuesLimits;
  /** POD_SECURITY_LEVEL: the Pod Security Standard enforced in namespaces CreateNamespace makes (restricted, baseline). */
  podSecurityLevel: PodSecurityLevel;
  /** INGRESS_NAMESPACE_SELECTOR: namespaces (the ingress controller's) whose pods tenant NetworkPolicies admit; "" none. */
  ingressNamespaceSelector: string;
  /** AUDIT_DATABASE_URL: PostgreSQL for the audit log and idempotency keys (several replicas). */
  auditDatabaseUrl: string | undefined;
  /** AUDIT_SQLITE_PATH: the SQLite file used when no AUDIT_DATABASE_URL is set (one replica). */
  auditSqlitePath: string;
  /** IDEMPOTENCY_KEY_TTL: how long an idempotency key and its result are kept, ms. */
  idempotencyTtlMs: number;
  /** OPERATION_RETENTION: how long ended operations are kept (the audit log keeps its records), ms. */
  operationRetentionMs: number;
  /** LEASE_NAMESPACE: where the per-release Leases live (the operator's own namespace). */
  leaseNamespace: string;
  /** LEASE_DURATION: how long a Lease outlives its last renewal, seconds. */
  leaseDurationSeconds: number;
  /** OPERATION_WAIT_TIMEOUT: how long a mutation waits for its release before ABORTED, ms. */
  operationWaitMs: number;
  /** This process's identity in Leases and the audit log: POD_NAME (or the host name) plus a per-start suffix. */
  replica: string;
  /** HEARTBEAT_INTERVAL: how often this replica marks itself alive in the audit store, ms. */
  heartbeatMs: number;
  /** RECONCILE_INTERVAL: how often stuck releases and orphaned audit intents are looked for, ms. */
  reconcileIntervalMs: number;
  /** WORKLOAD_MAX_REPLICAS: the most replicas ScaleWorkload and RebuildStatefulSetMember accept. */
  workloadMaxReplicas: number;
  /** WEBHOOKS_FILE: webhook subscriptions, reloaded when the file changes. */
  webhooksFile: string | undefined;
  /** The subscriptions WEBHOOKS_FILE held at start. */
  webhookSubscriptions: Subscription[];
  /** WEBHOOKS_ALLOW_LOOPBACK: loopback endpoints are allowed (tests, a sidecar receiver). */
  webhooksAllowLoopback: boolean;
  /** WEBHOOK_RETRY_SCHEDULE: delays before attempt 1, 2, …, ms. */
  webhookScheduleMs: number[];
  /** WEBHOOK_POLL_INTERVAL: how often due deliveries are looked for, ms. */
  webhookPollMs: number;
  /** WEBHOOK_TIMEOUT: one delivery request's limit, ms. */
  webhookTimeoutMs: number;
}

/** ConfigError is thrown for an invalid environment; main prints its one-line message and exits 1. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

type Env = Record<string, string | undefined>;

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/** loadConfig reads and validates the environment; it uses the old operator's variable names. */
export function loadConfig(env: Env = process.env): Config {
  const allowUnauthenticated = bool(env, "ALLOW_UNAUTHENTICATED", false);
  const apiKeys = readApiKeys(env);
  if (apiKeys.length === 0 && !env.API_KEYS_FILE && !allowUnauthenticated) {
    throw new ConfigError(
      "API_KEY, API_KEY_FILE or API_KEYS_FILE must be set (or ALLOW_UNAUTHENTICATED=true for development)",
    );
  }
  const prefix = env.NAMESPACE_PREFIX ?? "paas-ws-";
  if (!isDnsLabelPrefix(prefix) || prefix.length > 40) {
    throw new ConfigError(
      `NAMESPACE_PREFIX "${prefix}" must be lowercase letters, digits and '-', start alphanumeric, at most 40 characters`,
    );
  }
  const namedKeys = readNamedKeys(env, prefix, apiKeys);
  const repos = repositories(env.HELM_REPOSITORIES ?? "");
  const logLevel = env.LOG_LEVEL?.toLowerCase() ?? "info";
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}`);
  const helmTimeoutSeconds = duration(env, "HELM_TIMEOUT", 300);
  const maxHelmTimeoutSeconds = duration(env, "HELM_MAX_TIMEOUT", Math.max(3600, helmTimeoutSeconds));
  return {
    apiKeys,
    allowUnauthenticated,
    host: env.HOST ?? "0.0.0.0",
    port: int(env, "PORT", 8000, 0, 65535),
    metricsPort: env.METRICS_PORT ? int(env, "METRICS_PORT", 0, 0, 65535) : undefined,
    logLevel,
    namespacePrefix: prefix,
    helmBinary: env.HELM_BINARY || "helm",
    helmTimeoutSeconds,
    maxHelmTimeoutSeconds,
    helmConcurrency: int(env, "HELM_CONCURRENCY", 4, 1, 256),
    maxBodyBytes: int(env, "MAX_BODY_BYTES", 1024 * 1024, 1024, 256 * 1024 * 1024),
    repositories: repos,
    plainHttpRegistries: list(env.HELM_PLAIN_HTTP_REGISTRIES ?? ""),
    healthIntervalMs: duration(env, "HEALTH_CHECK_INTERVAL", 10) * 1000,
    shutdownGraceMs: duration(env, "SHUTDOWN_GRACE", helmTimeoutSeconds + 30) * 1000,
    apiKeysFile: env.API_KEYS_FILE || undefined,
    namedKeys,
    catalog: chartCatalog(env, repos),
    valuesLimits: {
      maxBytes: int(env, "VALUES_MAX_BYTES", DEFAULT_VALUES_LIMITS.maxBytes, 1024, 64 * 1024 * 1024),
      maxDepth: int(env, "VALUES_MAX_DEPTH", DEFAULT_VALUES_LIMITS.maxDepth, 2, 1000),
      maxKeys: int(env, "VALUES_MAX_KEYS", DEFAULT_VALUES_LIMITS.maxKeys, 1, 10_000_000),
    },
    podSecurityLevel: podSecurityLevel(env),
    ingressNamespaceSelector: ingressNamespaceSelector(env),
    auditDatabaseUrl: auditDatabaseUrl(env),
    auditSqlitePath: env.AUDIT_SQLITE_PATH || "data/audit.db",
    idempotencyTtlMs: duration(env, "IDEMPOTENCY_KEY_TTL", 24 * 3600, 7 * 86400) * 1000,
    operationRetentionMs: duration(env, "OPERATION_RETENTION", 30 * 86400, 3650 * 86400) * 1000,
    leaseNamespace: env.LEASE_NAMESPACE || env.POD_NAMESPACE || "paas-system",
    leaseDurationSeconds: duration(env, "LEASE_DURATION", 15, 300),
    operationWaitMs: duration(env, "OPERATION_WAIT_TIMEOUT", 120) * 1000,
    replica: `${(env.POD_NAME || hostname()).slice(0, 40)}-${randomBytes(3).toString("hex")}`,
    heartbeatMs: duration(env, "HEARTBEAT_INTERVAL", 5, 300) * 1000,
    reconcileIntervalMs: duration(env, "RECONCILE_INTERVAL", 30, 3600) * 1000,
    workloadMaxReplicas: int(env, "WORKLOAD_MAX_REPLICAS", 20, 1, 10_000),
    ...webhooks(env, prefix),
  };
}

/** webhooks reads WEBHOOKS_FILE and the sender's settings; a broken file stops the process. */
function webhooks(
  env: Env,
  prefix: string,
): Pick<
  Config,
  | "webhooksFile"
  | "webhookSubscriptions"
  | "webhooksAllowLoopback"
  | "webhookScheduleMs"
  | "webhookPollMs"
  | "webhookTimeoutMs"
> {
  const allowLoopback = bool(env, "WEBHOOKS_ALLOW_LOOPBACK", false);
  const file = env.WEBHOOKS_FILE || undefined;
  let subscriptions: Subscription[] = [];
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      throw new ConfigError(`WEBHOOKS_FILE ${file} cannot be read`);
    }
    try {
      subscriptions = parseWebhookFile(text, { prefix, allowLoopback });
    } catch (err) {
      if (err instanceof WebhookFileError) throw new ConfigError(`WEBHOOKS_FILE ${file}: ${err.message}`);
      throw err;
    }
  }
  let scheduleMs = [...DEFAULT_SCHEDULE_MS];
  if (env.WEBHOOK_RETRY_SCHEDULE) {
    try {
      scheduleMs = parseSchedule(env.WEBHOOK_RETRY_SCHEDULE);
    } catch (err) {
      throw new ConfigError(`WEBHOOK_RETRY_SCHEDULE ${(err as Error).message}`);
    }
  }
  const ms = (name: string, fallback: number, min: number, max: number) => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    const v = parseDurationMs(raw);
    if (v === undefined || v < min || v > max)
      throw new ConfigError(`${name} must be a duration between ${min}ms and ${max / 1000}s (500ms, 5s, 1m)`);
    return v;
  };
  return {
    webhooksFile: file,
    webhookSubscriptions: subscriptions,
    webhooksAllowLoopback: allowLoopback,
    webhookScheduleMs: scheduleMs,
    webhookPollMs: ms("WEBHOOK_POLL_INTERVAL", 1000, 50, 60_000),
    webhookTimeoutMs: ms("WEBHOOK_TIMEOUT", 15_000, 100, 60_000),
  };
}

/** ingressNamespaceSelector reads INGRESS_NAMESPACE_SELECTOR (kubectl selector syntax); unset: the ingress-nginx namespace, "": none. */
function ingressNamespaceSelector(env: Env): string {
  const raw = env.INGRESS_NAMESPACE_SELECTOR ?? DEFAULT_INGRESS_NAMESPACE_SELECTOR;
  try {
    parseNamespaceSelector(raw);
  } catch (err) {
    throw new ConfigError(`INGRESS_NAMESPACE_SELECTOR: ${(err as Error).message}`);
  }
  return raw.trim();
}

/** auditDatabaseUrl checks AUDIT_DATABASE_URL's form; the URL (it holds a password) is never echoed. */
function auditDatabaseUrl(env: Env): string | undefined {
  const raw = env.AUDIT_DATABASE_URL;
  if (!raw) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError("AUDIT_DATABASE_URL is not a URL (postgresql://user:password@host:port/database)");
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:")
    throw new ConfigError("AUDIT_DATABASE_URL must be a postgresql:// URL");
  return raw;
}

/** podSecurityLevel reads POD_SECURITY_LEVEL: restricted (default) or baseline; "privileged" is not offered. */
function podSecurityLevel(env: Env): PodSecurityLevel {
  const raw = (env.POD_SECURITY_LEVEL ?? "").trim().toLowerCase();
  if (raw === "") return POD_SECURITY_LEVELS[0]!;
  if (isPodSecurityLevel(raw)) return raw;
  throw new ConfigError(`POD_SECURITY_LEVEL must be ${POD_SECURITY_LEVELS.join(" or ")}`);
}

/** readNamedKeys reads API_KEYS_FILE at start: a broken file stops the process (later, a reload keeps the old keys). */
function readNamedKeys(env: Env, prefix: string, staticKeys: string[]): NamedKey[] {
  const file = env.API_KEYS_FILE;
  if (!file) return [];
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new ConfigError(`API_KEYS_FILE ${file} cannot be read`);
  }
  try {
    const keys = parseKeyFile(text, prefix);
    for (const k of keys) {
      if (staticKeys.some((s) => keyMatches(s, k)))
        throw new KeyFileError(`key "${k.id}" is also configured as an unscoped key (API_KEY or API_KEY_FILE)`);
    }
    return keys;
  } catch (err) {
    if (err instanceof KeyFileError) throw new ConfigError(`API_KEYS_FILE ${file}: ${err.message}`);
    throw err;
  }
}

function keyMatches(plain: string, key: NamedKey): boolean {
  return sha256(plain).equals(key.digest);
}

/**
 * chartCatalog reads CHART_CATALOG_FILE and CHART_CATALOG (both may be set: their sources add
 * up) plus HELM_REPOSITORIES. Neither set: no catalogue, every well-formed source is allowed
 * (the behaviour before catalogues; main logs a warning).
 */
function chartCatalog(env: Env, repos: Record<string, string>): ChartCatalog {
  let sources: CatalogSource[] | undefined;
  try {
    if (env.CHART_CATALOG_FILE) {
      let text: string;
      try {
        text = readFileSync(env.CHART_CATALOG_FILE, "utf8");
      } catch {
        throw new ConfigError(`CHART_CATALOG_FILE ${env.CHART_CATALOG_FILE} cannot be read`);
      }
      sources = parseCatalog(text, `CHART_CATALOG_FILE ${env.CHART_CATALOG_FILE}`);
    }
    if (env.CHART_CATALOG) sources = [...(sources ?? []), ...parseCatalog(env.CHART_CATALOG, "CHART_CATALOG")];
    return new ChartCatalog(sources, repos);
  } catch (err) {
    if (err instanceof CatalogError) throw new ConfigError(err.message);
    throw err;
  }
}

function readApiKeys(env: Env): string[] {
  const keys: string[] = [];
  if (env.API_KEY) keys.push(env.API_KEY);
  if (env.API_KEY_FILE) {
    let text: string;
    try {
      text = readFileSync(env.API_KEY_FILE, "utf8");
    } catch {
      throw new ConfigError(`API_KEY_FILE ${env.API_KEY_FILE} cannot be read`);
    }
    // One key per line; blank lines and # comments are ignored.
    for (const line of text.split("\n")) {
      const key = line.trim();
      if (key && !key.startsWith("#")) keys.push(key);
    }
    if (keys.length === 0) throw new ConfigError(`API_KEY_FILE ${env.API_KEY_FILE} holds no key`);
  }
  for (const key of keys) {
    // Never echo the key itself.
    const problem = keyProblem(key);
    if (problem) throw new ConfigError(problem);
  }
  return keys;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (/^(1|true|yes)$/i.test(raw)) return true;
  if (/^(0|false|no)$/i.test(raw)) return false;
  throw new ConfigError(`${name} must be true or false`);
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(`${name} must be an integer`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(`${name} must be between ${min} and ${max}`);
  return n;
}

/** duration accepts seconds ("300"), or a number with s, m or h ("300s", "5m", "1h"); at most maxSeconds. */
function duration(env: Env, name: string, fallbackSeconds: number, maxSeconds = 86400): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallbackSeconds;
  const m = /^(\d+)(s|m|h)?$/.exec(raw.trim());
  if (!m) throw new ConfigError(`${name} must be a duration such as 300, 300s, 5m or 1h`);
  const n = Number(m[1]) * (m[2] === "h" ? 3600 : m[2] === "m" ? 60 : 1);
  if (n < 1 || n > maxSeconds)
    throw new ConfigError(
      `${name} must be between 1s and ${maxSeconds % 3600 === 0 ? `${maxSeconds / 3600}h` : `${maxSeconds}s`}`,
    );
  return n;
}

function list(raw: string): string[] {
  return raw
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** repositories parses "name=url,name2=url2". */
function repositories(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of list(raw)) {
    const eq = entry.indexOf("=");
    const name = entry.slice(0, eq);
    const url = entry.slice(eq + 1);
    if (eq <= 0 || !isDnsLabelPrefix(name))
      throw new ConfigError(`HELM_REPOSITORIES entry "${entry}" must be name=url`);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ConfigError(`HELM_REPOSITORIES URL for ${name} is not a URL`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
      throw new ConfigError(`HELM_REPOSITORIES URL for ${name} must be http or https`);
    out[name] = url;
  }
  return out;
}
