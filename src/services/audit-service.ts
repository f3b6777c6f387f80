import type { ServiceImpl } from "@connectrpc/connect";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { AuditService } from "../../gen/paas/v1/audit_pb.js";
import type { AuditQuery, AuditStore, AuditVisibility } from "../domain/audit.ts";
import { scopeKey, type Scope } from "../auth/scopes.ts";
import { PaasError, printable } from "../errors.ts";
import { toAuditEvent } from "../mapping/audit-mapping.ts";

/** Page size when the request names none (page_size 0). */
export const DEFAULT_AUDIT_PAGE_SIZE = 100;
/** Largest page a caller may ask for. */
export const MAX_AUDIT_PAGE_SIZE = 1000;

export interface AuditServiceDeps {
  store: AuditStore;
  /**
   * The service's namespace prefix (NAMESPACE_PREFIX). A key's "*" pattern means "every
   * namespace under the prefix", so a scoped key with "*" sees the records of those namespaces
   * and not, say, a denied attempt on "kube-system". Absent: "*" matches every namespace, as
   * Scope.allowsNamespace itself does.
   */
  namespacePrefix?: string;
}

/**
 * createAuditService implements paas.v1.AuditService on an AuditStore.
 *
 * Who sees what: ListAuditEvents spans namespaces (its RPC rule has no namespaceField, like
 * ListNamespaces), so the handler limits the answer to the caller's scope. An unrestricted
 * key sees every record, those without a namespace and those of denied attempts outside the
 * prefix included. A scoped key sees only records whose namespace its patterns match (the
 * store filters, so pages stay full and tokens stay valid); records without a namespace are
 * hidden from it. A `namespace` filter outside the key's scope is PERMISSION_DENIED, decided
 * from the name alone as GetNamespace and ListReleases do, so "no such namespace" and "not
 * yours" answer the same. The filter itself is not held to the prefix: for an unrestricted
 * key it only narrows what it may list anyway (denied attempts on "kube-system" included);
 * a scoped key's patterns never reach outside the prefix, so there it is PERMISSION_DENIED.
 */
export function createAuditService(deps: AuditServiceDeps): ServiceImpl<typeof AuditService> {
  return {
    async listAuditEvents(req, ctx) {
      const pageSize = req.pageSize === 0 ? DEFAULT_AUDIT_PAGE_SIZE : req.pageSize;
      if (pageSize < 1 || pageSize > MAX_AUDIT_PAGE_SIZE) {
        throw new PaasError(
          "invalid_argument",
          `page_size must be between 1 and ${MAX_AUDIT_PAGE_SIZE} (0 or absent: ${DEFAULT_AUDIT_PAGE_SIZE})`,
        );
      }
      const since = timeOf(req.since, "since");
      const until = timeOf(req.until, "until");
      if (since && until && since.getTime() > until.getTime())
        throw new PaasError("invalid_argument", "since must not be after until");

      const scope = ctx.values.get(scopeKey);
      const visibility = scope.unrestricted ? undefined : visibilityOf(scope, deps.namespacePrefix);
      if (visibility && req.namespace !== "" && !isVisible(visibility, req.namespace)) {
        throw new PaasError(
          "permission_denied",
          `namespace "${printable(req.namespace)}" is outside this API key's scope`,
        );
      }

      const query: AuditQuery = { pageSize };
      if (req.namespace !== "") query.namespace = req.namespace;
      if (req.release !== "") query.release = req.release;
      if (req.caller !== "") query.caller = req.caller;
      if (req.operationId !== "") query.operationId = req.operationId;
      if (since) query.since = since;
      if (until) query.until = until;
      if (visibility) query.visibility = visibility;
      if (req.pageToken !== "") query.pageToken = req.pageToken;
      // A malformed page token is the store's to refuse (PaasError invalid_argument): only it
      // knows what its tokens hold.
      const page = await deps.store.list(query);
      return { events: page.records.map(toAuditEvent), nextPageToken: page.nextPageToken };
    },
  };
}

/** timeOf reads an optional Timestamp; one outside what a Date can hold is INVALID_ARGUMENT. */
export function timeOf(ts: Timestamp | undefined, field: string): Date | undefined {
  if (ts === undefined) return undefined;
  const date = ts.nanos < 0 || ts.nanos > 999_999_999 ? new Date(Number.NaN) : timestampDate(ts);
  if (Number.isNaN(date.getTime())) throw new PaasError("invalid_argument", `${field} is not a valid time`);
  return date;
}

/**
 * visibilityOf turns a scoped key's namespace patterns into what the store filters by: exact
 * names, and name prefixes ("paas-ws-team-*" → "paas-ws-team-"). "*" and a prefix pattern
 * shorter than the service prefix ("paas-*" under "paas-ws-") mean the service prefix itself.
 */
export function visibilityOf(scope: Scope, namespacePrefix = ""): AuditVisibility {
  const exact: string[] = [];
  const prefixes = new Set<string>();
  for (const pattern of scope.namespaces) {
    if (!pattern.endsWith("*")) {
      exact.push(pattern);
      continue;
    }
    const stem = pattern.slice(0, -1);
    if (stem.startsWith(namespacePrefix)) prefixes.add(stem);
    else if (namespacePrefix.startsWith(stem)) prefixes.add(namespacePrefix);
    // Otherwise the pattern can match nothing under the prefix (the key file refuses such patterns).
  }
  return { exact, prefixes: [...prefixes] };
}

function isVisible(v: AuditVisibility, namespace: string): boolean {
  return v.exact.includes(namespace) || v.prefixes.some((p) => namespace.startsWith(p));
}
