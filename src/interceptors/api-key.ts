import type { Interceptor } from "@connectrpc/connect";
import { PaasError } from "../errors.ts";
import { callerKey } from "../services/context-keys.ts";
import type { KeyStore } from "../auth/key-store.ts";
import { RPC_RULES, Scope, scopeKey, type RpcRule } from "../auth/scopes.ts";
import { withCheckedMessages } from "./check-messages.ts";

/** Services reachable without a key: probes and tooling must work unauthenticated. */
export const PUBLIC_SERVICES = new Set(["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"]);

/**
 * apiKeyInterceptor requires a valid `x-api-key` header on every call except the public
 * services, puts the key's id (never the key) into the context as the caller and its scope
 * next to it, and refuses with PERMISSION_DENIED an RPC whose verb the key lacks (RPC_RULES),
 * before the request is looked at any further. With no key source configured (development
 * only) every caller is "anonymous" with every right.
 */
export function apiKeyInterceptor(keys: KeyStore): Interceptor {
  return (next) => async (req) => {
    if (PUBLIC_SERVICES.has(req.service.typeName)) return next(req);
    if (keys.open) {
      req.contextValues.set(callerKey, { id: "anonymous" });
      req.contextValues.set(scopeKey, Scope.ALL);
      return next(req);
    }
    const presented = req.header.get("x-api-key");
    if (!presented) throw new PaasError("unauthenticated", "missing API key (x-api-key header)");
    const identity = keys.identify(presented);
    if (identity === undefined) throw new PaasError("unauthenticated", "invalid API key");
    req.contextValues.set(callerKey, { id: identity.id });
    req.contextValues.set(scopeKey, identity.scope);
    const rule = ruleOf(req.service.typeName, req.method.name);
    const needs = [rule.verb];
    if (rule.also && !req.stream) {
      const extra = rule.also(req.message as Record<string, unknown>);
      if (extra) needs.push(extra);
    }
    for (const verb of needs) {
      if (!identity.scope.allowsVerb(verb)) {
        throw new PaasError(
          "permission_denied",
          `API key "${identity.id}" may not call ${req.method.name}: it lacks the "${verb}" verb`,
        );
      }
    }
    return next(req);
  };
}

/**
 * scopeInterceptor runs after the namespace-prefix interceptor (names are well-formed and
 * under the prefix by then) and refuses a namespace outside the key's scope with
 * PERMISSION_DENIED. The answer depends on the name alone — nothing is looked up — so
 * "does not exist" and "belongs to someone else" cannot be told apart. Streaming requests
 * are checked message by message, before the handler acts on them.
 */
export function scopeInterceptor(): Interceptor {
  return (next) => async (req) => {
    if (PUBLIC_SERVICES.has(req.service.typeName)) return next(req);
    const field = ruleOf(req.service.typeName, req.method.name).namespaceField;
    const scope = req.contextValues.get(scopeKey);
    if (field === undefined || scope.unrestricted) return next(req);
    const check = (message: object) => {
      const ns = (message as Record<string, unknown>)[field];
      if (typeof ns !== "string" || !scope.allowsNamespace(ns)) {
        throw new PaasError(
          "permission_denied",
          `namespace "${typeof ns === "string" ? ns : ""}" is outside this API key's scope`,
        );
      }
    };
    return next(withCheckedMessages(req, check));
  };
}

// An RPC missing from the table is refused, whatever the key (fail closed).
function ruleOf(service: string, method: string): RpcRule {
  const rule = RPC_RULES[`${service}/${method}`];
  if (rule === undefined) throw new PaasError("permission_denied", `${service}/${method} has no access rule`);
  return rule;
}
