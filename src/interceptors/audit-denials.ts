import { Code, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { newAuditId, newOperationId } from "../audit/ids.ts";
import type { AuditStore } from "../domain/audit.ts";
import { RPC_RULES } from "../auth/scopes.ts";
import { callerKey, operationKey, peerKey, requestIdKey } from "../services/context-keys.ts";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { toConnectError } from "../errors.ts";
import { emptyRecord } from "../operations/audit-records.ts";

// The RPCs that change something: every verb but "read".
const MUTATING = new Set(
  Object.entries(RPC_RULES)
    .filter(([, rule]) => rule.verb !== "read")
    .map(([name]) => name),
);

const DENIED = new Set([Code.Unauthenticated, Code.PermissionDenied]);

/**
 * auditDenialsInterceptor records, in the audit log, every mutating call refused before it
 * started: a missing or wrong key, a namespace outside the prefix or the key's scope, a
 * chart outside the catalogue. A refusal after the operation started is that operation's
 * own "failed" outcome (src/operations/). Writing the record never changes the answer.
 */
export function auditDenialsInterceptor(audit: AuditStore, replica: string, logger: Logger): Interceptor {
  return (next) => async (req) => {
    const method = `${req.service.typeName}/${req.method.name}`;
    if (!MUTATING.has(method) || req.stream) return next(req);
    try {
      return await next(req);
    } catch (err) {
      const e = toConnectError(err);
      if (DENIED.has(e.code) && req.contextValues.get(operationKey) === "") {
        const message = req.message as Record<string, unknown>;
        const text = (v: unknown) => (typeof v === "string" ? v.slice(0, 253) : "");
        const isNamespaceService = req.service.typeName === "paas.v1.NamespaceService";
        try {
          await audit.append({
            ...emptyRecord(),
            id: newAuditId(),
            time: new Date(),
            stage: "outcome",
            outcome: "denied",
            operationId: newOperationId(),
            caller: req.contextValues.get(callerKey)?.id ?? "",
            sourceIp: req.contextValues.get(peerKey),
            userAgent: (req.header.get("user-agent") ?? "").slice(0, 256),
            requestId: req.contextValues.get(requestIdKey),
            method,
            namespace: text(isNamespaceService ? message.name : message.namespace),
            release: isNamespaceService ? "" : text(message.name),
            idempotencyKey: text(message.idempotencyKey) || (req.header.get("idempotency-key") ?? "").slice(0, 255),
            errorCode: codeToString(e.code),
            errorMessage: e.rawMessage.slice(0, 500),
            replica,
          });
        } catch (writeErr) {
          logger.error(
            { method, err: writeErr instanceof Error ? writeErr.message : String(writeErr) },
            "audit: a denial could not be recorded",
          );
        }
      }
      throw err;
    }
  };
}
