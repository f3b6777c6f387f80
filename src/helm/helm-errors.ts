import { type ErrorKind, PaasError } from "../errors.ts";
import {
  APPLY_CONFLICT,
  applyConflict,
  existingObject,
  invalidObject,
  modifiedObject,
  OBJECT_ALREADY_EXISTS,
  OBJECT_INVALID,
  OBJECT_MODIFIED,
} from "./api-refusals.ts";
import { sanitizeStderr } from "./sanitize.ts";

/** HelmVerb names a helm run in messages and logs. */
export type HelmVerb =
  | "version"
  | "pull"
  | "install"
  | "upgrade"
  | "rollback"
  | "uninstall"
  | "status"
  | "get metadata"
  | "history"
  | "list";

/** Outcome is how a failed helm run ended (a subset of the process runner's result). */
export interface Outcome {
  exitCode: number | null;
  signal?: string;
  stderr: string;
  timedOut: boolean;
  aborted: boolean;
  /** The AbortSignal's reason: a TimeoutError means a deadline, anything else a cancel. */
  abortReason?: unknown;
  /** Set when helm could not be started or its output overflowed. */
  failure?: string;
}

/** ClassifyContext names what the run was about; it is the only source of message text. */
export interface ClassifyContext {
  verb: HelmVerb;
  namespace: string;
  /** Release name; empty for version and list. */
  name: string;
  /** Chart label for install and upgrade, e.g. "oci://r/charts/podinfo 6.13.0". */
  chart?: string;
}

type Rule = { test: RegExp; kind: ErrorKind; message: (c: ClassifyContext, m: RegExpExecArray) => string };

const rel = (c: ClassifyContext) => `Release ${c.name}`;
const ns = (c: ClassifyContext) => `namespace ${c.namespace}`;
const chart = (c: ClassifyContext) => `Chart ${c.chart ?? ""}`.trim();

// First match wins, so specific rules come before broad ones: chart-repository errors
// embed "connection refused", quota errors are "forbidden" errors, and a terminating
// namespace is reported as "forbidden" too.
const RULES: readonly Rule[] = [
  {
    test: /another operation \(install\/upgrade\/rollback\) is in progress/,
    kind: "conflict",
    message: (c) => `Another operation on release ${c.name} is in progress`,
  },
  {
    test: /cannot re-?use a name that is still in use/,
    kind: "already_exists",
    message: (c) => `${rel(c)} already exists in ${ns(c)}`,
  },
  {
    test: /release: not found|the release named "[^"]*" is already deleted/,
    kind: "not_found",
    message: (c) => `${rel(c)} not found in ${ns(c)}`,
  },
  {
    test: /release has no 0 version/,
    kind: "failed_precondition",
    message: (c) => `${rel(c)} has no previous revision to roll back to`,
  },
  {
    test: /release has no (\d+) version/,
    kind: "not_found",
    message: (c, m) => `Revision ${m[1]} of release ${c.name} not found in ${ns(c)}`,
  },
  {
    test: /has no deployed releases/,
    kind: "failed_precondition",
    message: (c) => `${rel(c)} has no deployed revision in ${ns(c)}`,
  },
  {
    test: /user supplied labels contains system reserved label/,
    kind: "invalid_argument",
    message: () => "Release labels use a name reserved by helm",
  },
  {
    test: /[Rr]elease name is invalid|invalid release name|release name .* exceeds max length/,
    kind: "invalid_argument",
    message: (c) => `Release name ${c.name} is invalid`,
  },
  // Before the chart rules, which also match "… not found".
  {
    test: /namespaces "[^"]*" not found/,
    kind: "failed_precondition",
    message: (c) => `Namespace ${c.namespace} does not exist`,
  },
  // Chart sources (install and upgrade only).
  {
    test: /on source: \S+: not found|not found in \S+ repository|not found in \S+ index|no chart (?:version|name) found|: manifest unknown|repository name not known to registry|no repo named|repo \S+ not found|[Cc]ould not locate a version matching/m,
    kind: "not_found",
    message: (c) => `${chart(c)} not found`,
  },
  {
    test: /is not a valid chart repository or cannot be reached|failed to fetch .*: 404|failed to do request|failed to perform "\w+" on source|http: server gave HTTP response to HTTPS client|"https?:\/\/[^"\s]*\/v2\/[^"\s]*": /,
    kind: "failed_precondition",
    message: (c) => `${chart(c)} cannot be fetched: its repository is unreachable or invalid`,
  },
  {
    test: /values don't meet the specifications of the schema/,
    kind: "invalid_argument",
    message: (c) => `Values do not match the schema of ${chart(c).toLowerCase()}`,
  },
  {
    test: /execution error at \(|error calling (?:required|fail)|parse error at \(|error converting YAML to JSON/,
    kind: "invalid_argument",
    message: () => "The chart cannot be rendered with the given values",
  },
  // Kubernetes API errors.
  // Tenant quotas allow no NodePort or LoadBalancer Services at all (src/kube/tenancy/quota.ts).
  {
    test: /exceeded quota: [^,]*, requested: services\.(loadbalancers|nodeports)=/,
    kind: "resource_exhausted",
    message: (c, m) =>
      `Resource quota of ${ns(c)} allows no Services of type ${m[1] === "nodeports" ? "NodePort" : "LoadBalancer"}: use type ClusterIP (and an Ingress)`,
  },
  { test: /exceeded quota/, kind: "resource_exhausted", message: (c) => `Resource quota of ${ns(c)} exceeded` },
  {
    test: /because it is being terminated/,
    kind: "failed_precondition",
    message: (c) => `Namespace ${c.namespace} is being deleted`,
  },
  {
    test: /exists and cannot be imported into the current release/,
    kind: "failed_precondition",
    message: (c) => `Resources of release ${c.name} already exist and belong to something else`,
  },
  {
    test: /field is immutable/,
    kind: "failed_precondition",
    message: (c) => `The ${c.verb} of release ${c.name} would change an immutable field`,
  },
  // The API server's validation of an object's name, e.g. a Service named after a dotted
  // release name ("my-app.v2-podinfo": Service names are DNS-1035 labels, without dots).
  {
    test: /\b([A-Z][A-Za-z0-9]*) "[^"]*" is invalid: metadata\.name: Invalid value/,
    kind: "invalid_argument",
    message: (c, m) =>
      `The ${c.verb} ${what(c)}creates a ${m[1]} whose name Kubernetes refuses` +
      (c.name.includes(".")
        ? `; charts derive names from the release name, and a ${m[1]} name may not contain "." (set the chart's fullnameOverride)`
        : ""),
  },
  // The API server refuses an object of the chart as invalid (validation, or a field of the
  // wrong type: SSA's typed patch in v4, decoding in v3): the values made it so. Named: the
  // object and the fields, never the values (src/helm/api-refusals.ts).
  {
    test: OBJECT_INVALID,
    kind: "invalid_argument",
    message: (c, m) => `The ${c.verb} ${what(c)}${invalidObject(m.input)}`,
  },
  {
    test: OBJECT_ALREADY_EXISTS,
    kind: "already_exists",
    message: (c, m) => `The ${c.verb} ${what(c)}${existingObject(m)} in ${ns(c)}`,
  },
  // Server-side apply (v4): fields another writer manages; it persists until that is settled.
  {
    test: APPLY_CONFLICT,
    kind: "failed_precondition",
    message: (c, m) => `The ${c.verb} ${what(c)}${applyConflict(m.input)}`,
  },
  // Optimistic concurrency: the object changed under helm; the caller may simply retry.
  { test: OBJECT_MODIFIED, kind: "conflict", message: (c, m) => `The ${c.verb} ${what(c)}${modifiedObject(m)}` },
  // "…cluster unreachable: …: context deadline exceeded" is an outage, not a slow rollout.
  { test: /kubernetes cluster unreachable/i, kind: "unavailable", message: () => "The Kubernetes API is unreachable" },
  {
    test: /context deadline exceeded|timed out waiting for the condition/,
    kind: "timeout",
    message: (c) => `helm ${c.verb} ${what(c)}timed out`,
  },
  // helm traps SIGTERM/SIGINT during install and upgrade and fails with this.
  { test: /context canceled/, kind: "unavailable", message: (c) => `helm ${c.verb} ${what(c)}was cancelled` },
  // Pod Security Admission refuses a Pod ("… is forbidden: violates PodSecurity …").
  {
    test: /violates PodSecurity "([a-z]+)/,
    kind: "failed_precondition",
    message: (c, m) =>
      `The ${c.verb} ${what(c)}creates a pod that violates the Pod Security level "${m[1]}" of ${ns(c)}`,
  },
  // RBAC's escalation check: a Role or RoleBinding granting more than helm's identity holds.
  {
    test: /is attempting to grant RBAC permissions not currently held/,
    kind: "permission_denied",
    message: (c) => `The ${c.verb} ${what(c)}would grant permissions the tenant does not hold in ${ns(c)}`,
  },
  // The render guard failed without a verdict (a verdict becomes its own message).
  {
    test: /error while running post render/,
    kind: "internal",
    message: (c) => `The render guard could not check the chart for the ${c.verb} ${what(c)}`.trim(),
  },
  {
    test: /\bforbidden\b/i,
    kind: "permission_denied",
    message: (c) => `Permission denied for helm ${c.verb} ${what(c)}in ${ns(c)}`,
  },
  {
    test: /connection refused|no such host|i\/o timeout|TLS handshake timeout/i,
    kind: "unavailable",
    message: () => "The Kubernetes API is unreachable",
  },
];

function what(c: ClassifyContext): string {
  return c.name ? `of release ${c.name} ` : "";
}

/**
 * classify turns a failed helm run into a PaasError whose message is built only from the
 * context (never from helm's output, which can echo values or Secret data); sanitized
 * stderr travels in `cause` for the log.
 */
export function classify(outcome: Outcome, ctx: ClassifyContext): PaasError {
  const cause = new Error(describe(outcome));
  if (outcome.aborted) {
    const deadline = (outcome.abortReason as { name?: unknown } | undefined)?.name === "TimeoutError";
    return deadline
      ? new PaasError("timeout", `helm ${ctx.verb} ${what(ctx)}exceeded its deadline`.replace(/ +/g, " "), { cause })
      : new PaasError("unavailable", `helm ${ctx.verb} ${what(ctx)}was cancelled`.replace(/ +/g, " "), { cause });
  }
  if (outcome.timedOut)
    return new PaasError("timeout", `helm ${ctx.verb} ${what(ctx)}timed out`.replace(/ +/g, " "), { cause });
  if (outcome.failure) {
    const message = outcome.failure.startsWith("could not start")
      ? `helm ${ctx.verb} could not be run`
      : `helm ${ctx.verb} failed`;
    return new PaasError("internal", message, { cause });
  }
  for (const rule of RULES) {
    const m = rule.test.exec(outcome.stderr);
    if (m) return new PaasError(rule.kind, rule.message(ctx, m).replace(/ +/g, " "), { cause });
  }
  return new PaasError("internal", `helm ${ctx.verb} failed`, { cause });
}

function describe(o: Outcome): string {
  const end = o.exitCode !== null ? `exit code ${o.exitCode}` : `signal ${o.signal ?? "unknown"}`;
  const flags = [o.timedOut && "timed out", o.aborted && "aborted", o.failure].filter(Boolean).join(", ");
  return `helm ${end}${flags ? ` (${flags})` : ""}: ${sanitizeStderr(o.stderr)}`;
}
