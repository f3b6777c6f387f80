import { createContextKey } from "@connectrpc/connect";
import { DNS1123_LABEL_MAX, isDnsLabel, isDnsLabelPrefix } from "../domain/names.ts";

/** Verb is what an API key may do; each RPC needs exactly one (RPC_RULES). */
export type Verb = "read" | "deploy" | "delete" | "namespace-admin" | "operate";
export const VERBS: readonly Verb[] = ["read", "deploy", "delete", "namespace-admin", "operate"];

/** RpcRule says which verb an RPC needs and which request field names the namespace it acts on. */
export interface RpcRule {
  verb: Verb;
  /** The request field holding the namespace; absent for calls that span namespaces (ListNamespaces filters instead). */
  namespaceField?: string;
  /** A further verb some requests need, decided from the request alone (before any lookup). */
  also?: (message: Record<string, unknown>) => Verb | undefined;
}

const read = (namespaceField?: string): RpcRule => ({ verb: "read", ...(namespaceField ? { namespaceField } : {}) });

/**
 * RPC_RULES is the one table of which verb each RPC needs: read = Get*, List*, Watch*;
 * deploy = Install, Upgrade, Rollback, Recover; delete = Uninstall; namespace-admin =
 * Create/DeleteNamespace. An InstallRelease with create_namespace=true creates a namespace and
 * so needs namespace-admin too. An RPC of a protected service missing here is refused (fail
 * closed); a unit test checks that every RPC of the protected services is listed.
 */
export const RPC_RULES: Readonly<Record<string, RpcRule>> = {
  "paas.v1.ReleaseService/InstallRelease": {
    verb: "deploy",
    namespaceField: "namespace",
    also: (m) => (m.createNamespace === true ? "namespace-admin" : undefined),
  },
  "paas.v1.ReleaseService/UpgradeRelease": { verb: "deploy", namespaceField: "namespace" },
  "paas.v1.ReleaseService/RollbackRelease": { verb: "deploy", namespaceField: "namespace" },
  // Repairs a release stuck in pending-*: it writes the release's storage, like a rollback.
  "paas.v1.ReleaseService/RecoverRelease": { verb: "deploy", namespaceField: "namespace" },
  "paas.v1.ReleaseService/UninstallRelease": { verb: "delete", namespaceField: "namespace" },
  "paas.v1.ReleaseService/GetRelease": read("namespace"),
  "paas.v1.ReleaseService/GetReleaseStatus": read("namespace"),
  "paas.v1.ReleaseService/ListReleaseRevisions": read("namespace"),
  "paas.v1.ReleaseService/ListReleases": read("namespace"),
  "paas.v1.ReleaseService/WatchReleaseStatus": read("namespace"),
  "paas.v1.NamespaceService/CreateNamespace": { verb: "namespace-admin", namespaceField: "name" },
  "paas.v1.NamespaceService/DeleteNamespace": { verb: "namespace-admin", namespaceField: "name" },
  "paas.v1.NamespaceService/GetNamespace": read("name"),
  "paas.v1.NamespaceService/ListNamespaces": read(),
  // Spans namespaces like ListNamespaces: its `namespace` is an optional filter, and the handler
  // shows a scoped key only the records of its namespaces (src/services/audit-service.ts).
  "paas.v1.AuditService/ListAuditEvents": read(),
  // Day-2 actions on workloads (scale, restart, delete a pod or claim, the rebuild runbook):
  // "operate", which read-only and deploy-only keys lack.
  "paas.v1.WorkloadService/ListWorkloads": read("namespace"),
  "paas.v1.WorkloadService/ScaleWorkload": { verb: "operate", namespaceField: "namespace" },
  "paas.v1.WorkloadService/RestartWorkload": { verb: "operate", namespaceField: "namespace" },
  "paas.v1.WorkloadService/DeletePod": { verb: "operate", namespaceField: "namespace" },
  "paas.v1.WorkloadService/DeletePersistentVolumeClaim": { verb: "operate", namespaceField: "namespace" },
  "paas.v1.WorkloadService/RebuildStatefulSetMember": { verb: "operate", namespaceField: "namespace" },
  // Operations name no namespace in their requests: the handlers answer NOT_FOUND for an
  // operation outside the key's scope, and cancelling also needs the verb of the operation's
  // own RPC (src/services/operation-service.ts).
  "paas.v1.OperationService/GetOperation": read(),
  "paas.v1.OperationService/ListOperations": read(),
  "paas.v1.OperationService/WatchOperation": read(),
  "paas.v1.OperationService/WaitOperation": read(),
  "paas.v1.OperationService/CancelOperation": read(),
  // Server configuration and every tenant's deliveries: the handlers also require an
  // unrestricted key (src/services/webhook-service.ts).
  "paas.v1.WebhookService/ListWebhookSubscriptions": read(),
  "paas.v1.WebhookService/ListWebhookDeliveries": read(),
  "paas.v1.WebhookService/RedeliverWebhook": { verb: "deploy" },
};

/**
 * NamespacePattern: an exact namespace ("paas-ws-a"), a prefix ending in '*' ("paas-ws-team-*"),
 * or "*" (every namespace under the service's prefix).
 */
export type NamespacePattern = string;

/** Scope is what one API key may do and see. */
export class Scope {
  /** An unscoped key (API_KEY, API_KEY_FILE) or the anonymous caller of a development server. */
  static readonly ALL = new Scope(["*"], VERBS);
  /** Nothing: the default when no interceptor set a scope (fail closed). */
  static readonly NONE = new Scope([], []);

  readonly namespaces: readonly NamespacePattern[];
  readonly verbs: ReadonlySet<Verb>;

  constructor(namespaces: readonly NamespacePattern[], verbs: Iterable<Verb>) {
    this.namespaces = [...namespaces];
    this.verbs = new Set(verbs);
  }

  allowsVerb(verb: Verb): boolean {
    return this.verbs.has(verb);
  }

  /** allowsNamespace decides from the name alone: whether it exists is never looked up. */
  allowsNamespace(name: string): boolean {
    return this.namespaces.some((p) => (p.endsWith("*") ? name.startsWith(p.slice(0, -1)) : name === p));
  }

  get unrestricted(): boolean {
    return this.namespaces.includes("*") && VERBS.every((v) => this.verbs.has(v));
  }
}

/** scopeKey carries the caller's scope from the API-key interceptor to the scope check and the list handlers. */
export const scopeKey = createContextKey<Scope>(Scope.NONE, { description: "API key scope" });

/**
 * patternProblem says what is wrong with a namespace pattern, or undefined: it must be
 * well-formed and able to match some namespace under the prefix. The message does not
 * repeat the pattern (the caller names it, taking care not to log a key pasted there).
 */
export function patternProblem(pattern: string, prefix: string): string | undefined {
  const wellFormed =
    pattern === "*" || isDnsLabel(pattern) || (pattern.endsWith("*") && isDnsLabelPrefix(pattern.slice(0, -1)));
  if (pattern.length > DNS1123_LABEL_MAX || !wellFormed) {
    return "must be a namespace name, a name prefix ending in '*', or '*'";
  }
  if (pattern === "*") return undefined;
  if (pattern.endsWith("*")) {
    const stem = pattern.slice(0, -1);
    if (stem.startsWith(prefix) || prefix.startsWith(stem)) return undefined;
  } else if (pattern.startsWith(prefix) && pattern.length > prefix.length) {
    return undefined;
  }
  return `can never match a namespace under the prefix "${prefix}"`;
}
