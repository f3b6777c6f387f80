import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { OperationService } from "../../gen/paas/v1/operation_pb.js";
import { RPC_RULES, scopeKey } from "../auth/scopes.ts";
import { PaasError, printable } from "../errors.ts";
import { callerKey } from "./context-keys.ts";
import { stateFromProto, toOperation } from "../mapping/operation-mapping.ts";
import type { OperationEngine } from "../operations/engine.ts";
import type { OperationQuery, OperationRecord, OperationStore } from "../domain/operation.ts";
import { timeOf, visibilityOf } from "./audit-service.ts";

export interface OperationServiceDeps {
  engine: OperationEngine;
  store: OperationStore;
  /** NAMESPACE_PREFIX: a key's "*" means every namespace under it. */
  namespacePrefix: string;
}

export const DEFAULT_OPERATION_PAGE_SIZE = 100;
export const MAX_OPERATION_PAGE_SIZE = 1000;
const DEFAULT_WAIT_S = 60;
const MAX_WAIT_S = 600;

// Operation ids are lowercase ULIDs (src/audit/ids.ts).
const OPERATION_ID = /^[0-9a-hjkmnp-tv-z]{26}$/;

/**
 * createOperationService implements paas.v1.OperationService. Who sees what: an operation
 * whose namespace the caller's key may not see answers NOT_FOUND, the same as an id that does
 * not exist, so ids of other tenants reveal nothing; lists show only the key's namespaces (as
 * the audit log does). Cancelling needs the verb of the operation's own RPC as well.
 */
export function createOperationService(deps: OperationServiceDeps): ServiceImpl<typeof OperationService> {
  const find = async (id: string, ctx: HandlerContext): Promise<OperationRecord> => {
    if (!OPERATION_ID.test(id))
      throw new PaasError("invalid_argument", "id must be an operation id (26 lowercase letters and digits)");
    const op = await deps.store.getOperation(id);
    const scope = ctx.values.get(scopeKey);
    if (!op || !(scope.unrestricted || (op.namespace !== "" && scope.allowsNamespace(op.namespace)))) {
      throw new PaasError("not_found", `operation ${id} not found`);
    }
    return op;
  };

  return {
    async getOperation(req, ctx) {
      return { operation: toOperation(await find(req.id, ctx)) };
    },

    async listOperations(req, ctx) {
      const pageSize = req.pageSize === 0 ? DEFAULT_OPERATION_PAGE_SIZE : req.pageSize;
      if (pageSize < 1 || pageSize > MAX_OPERATION_PAGE_SIZE) {
        throw new PaasError(
          "invalid_argument",
          `page_size must be between 1 and ${MAX_OPERATION_PAGE_SIZE} (0 or absent: ${DEFAULT_OPERATION_PAGE_SIZE})`,
        );
      }
      const scope = ctx.values.get(scopeKey);
      const visibility = scope.unrestricted ? undefined : visibilityOf(scope, deps.namespacePrefix);
      if (!scope.unrestricted && req.namespace !== "" && !scope.allowsNamespace(req.namespace)) {
        throw new PaasError(
          "permission_denied",
          `namespace "${printable(req.namespace)}" is outside this API key's scope`,
        );
      }
      const query: OperationQuery = { pageSize };
      if (req.namespace !== "") query.namespace = req.namespace;
      if (req.release !== "") query.release = req.release;
      if (req.kind !== "") query.kind = req.kind;
      const state = stateFromProto(req.state);
      if (state) query.state = state;
      const since = timeOf(req.since, "since");
      if (since) query.since = since;
      if (visibility) query.visibility = visibility;
      if (req.pageToken !== "") query.pageToken = req.pageToken;
      const page = await deps.store.listOperations(query);
      return { operations: page.operations.map(toOperation), nextPageToken: page.nextPageToken };
    },

    async *watchOperation(req, ctx) {
      await find(req.id, ctx);
      for await (const op of deps.engine.watch(req.id, ctx.signal)) yield { operation: toOperation(op) };
    },

    async waitOperation(req, ctx) {
      const seconds = waitSeconds(req.timeout);
      await find(req.id, ctx);
      return { operation: toOperation(await deps.engine.wait(req.id, seconds * 1000, ctx.signal)) };
    },

    async cancelOperation(req, ctx) {
      const op = await find(req.id, ctx);
      const rule = RPC_RULES[op.method];
      const scope = ctx.values.get(scopeKey);
      if (rule && !scope.allowsVerb(rule.verb)) {
        throw new PaasError(
          "permission_denied",
          `this API key may not cancel a ${op.kind} operation: it lacks the "${rule.verb}" verb`,
        );
      }
      const by = ctx.values.get(callerKey)?.id || "a caller";
      return { operation: toOperation(await deps.engine.cancel(op.id, by)) };
    },
  };
}

function waitSeconds(d: Duration | undefined): number {
  if (d === undefined) return DEFAULT_WAIT_S;
  const s = Number(d.seconds) + d.nanos / 1e9;
  if (!(s >= 0) || s > MAX_WAIT_S)
    throw new PaasError("invalid_argument", `timeout must be between 0s and ${MAX_WAIT_S}s`);
  return s;
}
