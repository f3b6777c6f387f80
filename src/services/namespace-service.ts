import type { ServiceImpl } from "@connectrpc/connect";
import {
  CreateNamespaceResponseSchema,
  DeleteNamespaceResponseSchema,
  NamespaceService,
} from "../../gen/paas/v1/namespace_pb.js";
import type { KubeClient } from "../kube/kube-types.ts";
import type { OperationEngine } from "../operations/engine.ts";
import type { Verbs } from "../operations/verbs/all-verbs.ts";
import { toNamespace } from "../mapping/release-mapping.ts";
import { scopeKey } from "../auth/scopes.ts";
import { answerOf } from "./submitted.ts";
import { submitOptions } from "./submit-options.ts";

/** NamespaceServiceDeps are what the namespace handlers need. */
export interface NamespaceServiceDeps {
  kube: KubeClient;
  /** Runs every mutation as an operation (src/operations/). */
  engine: OperationEngine;
  verbs: Pick<Verbs, "createNamespace" | "deleteNamespace">;
  prefix: string;
}

/** createNamespaceService implements paas.v1.NamespaceService. */
export function createNamespaceService(deps: NamespaceServiceDeps): ServiceImpl<typeof NamespaceService> {
  const { kube, engine, verbs, prefix } = deps;
  return {
    async createNamespace(req, ctx) {
      return answerOf(
        CreateNamespaceResponseSchema,
        await engine.submit(verbs.createNamespace, req, submitOptions(req, ctx)),
      );
    },

    async getNamespace(req) {
      return { namespace: toNamespace(await kube.getNamespace(req.name)) };
    },

    async listNamespaces(_req, ctx) {
      // Only the namespaces the caller's API key may see (src/auth/scopes.ts).
      const scope = ctx.values.get(scopeKey);
      const list = await kube.listNamespaces(prefix);
      return { namespaces: list.filter((n) => scope.allowsNamespace(n.name)).map(toNamespace) };
    },

    async deleteNamespace(req, ctx) {
      return answerOf(
        DeleteNamespaceResponseSchema,
        await engine.submit(verbs.deleteNamespace, req, submitOptions(req, ctx)),
      );
    },
  };
}
