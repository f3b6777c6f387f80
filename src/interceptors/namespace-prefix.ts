import type { Interceptor } from "@connectrpc/connect";
import { validateNamespace, validateReleaseName } from "../domain/validation.ts";
import { withCheckedMessages } from "./check-messages.ts";

/** Target names the fields of a request that address a namespace and a release. */
interface Target {
  namespace?: string;
  release?: string;
}

// NamespaceService calls the namespace "name"; ReleaseService calls it "namespace" and the release "name".
const targets: Record<string, Target> = {
  "paas.v1.ReleaseService": { namespace: "namespace", release: "name" },
  "paas.v1.NamespaceService": { namespace: "name" },
  "paas.v1.WorkloadService": { namespace: "namespace" },
};

/**
 * namespacePrefixInterceptor refuses, before any side effect, a request whose namespace is
 * malformed (INVALID_ARGUMENT) or outside the prefix (PERMISSION_DENIED), or whose release
 * name breaks Helm's rule (INVALID_ARGUMENT).
 */
export function namespacePrefixInterceptor(prefix: string): Interceptor {
  return (next) => async (req) => {
    const target = targets[req.service.typeName];
    if (target === undefined) return next(req);
    const check = (message: object) => checkTarget(message as Record<string, unknown>, target, prefix);
    return next(withCheckedMessages(req, check));
  };
}

function checkTarget(message: Record<string, unknown>, target: Target, prefix: string): void {
  const ns = target.namespace && message[target.namespace];
  if (typeof ns === "string") validateNamespace(ns, prefix, target.namespace);
  const release = target.release && message[target.release];
  if (typeof release === "string") validateReleaseName(release, target.release);
}
