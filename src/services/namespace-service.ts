import type { ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import {
  CreateNamespaceRequestSchema,
  CreateNamespaceResponseSchema,
  DeleteNamespaceRequestSchema,
  DeleteNamespaceResponseSchema,
  NamespaceService,
} from "../../gen/paas/v1/namespace_pb.js";
import { PaasError } from "../errors.ts";
import type { KubeClient, NamespaceOptions, QuotaSpec } from "../kube/kube-types.ts";
import { OperationQueue } from "../operations/operation-queue.ts";
import type { Operations } from "../operations/operations.ts";
import { validateQuantity } from "../domain/validation.ts";
import { isPodSecurityLevel } from "../domain/pod-security-levels.ts";
import { toNamespace } from "./release-mapping.ts";
import { scopeKey } from "../auth/scopes.ts";

/** DEFAULT_QUOTA is what a namespace gets when the caller names no limits. */
export const DEFAULT_QUOTA: QuotaSpec = { cpu: "2", memory: "4Gi", storage: "20Gi" };

/** NamespaceManager is the namespace logic shared by both services. */
export class NamespaceManager {
  private readonly kube: KubeClient;
  // Its own queue: namespace calls are short API calls and must not wait for helm slots
  // (an install that creates its namespace holds one already).
  private readonly queue = new OperationQueue(16);

  constructor(kube: KubeClient) {
    this.kube = kube;
  }

  /** ensure creates the namespace with its quota, or updates the quota; serialized per namespace. */
  ensure(name: string, quota: QuotaSpec, options: NamespaceOptions = {}) {
    return this.queue.run(`namespace:${name}`, () => this.kube.ensureNamespace(name, quota, options));
  }

  /** ensureDefault creates the namespace with the default quota unless it exists already. */
  async ensureDefault(name: string): Promise<void> {
    await this.queue.run(`namespace:${name}`, async () => {
      try {
        await this.kube.getNamespace(name);
      } catch (err) {
        if (!(err instanceof PaasError) || err.kind !== "not_found") throw err;
        await this.kube.ensureNamespace(name, DEFAULT_QUOTA);
      }
    });
  }

  /** requireManaged fails with NOT_FOUND unless the namespace exists and is managed by this service. */
  async requireManaged(name: string): Promise<void> {
    await this.kube.getNamespace(name);
  }
}

/** NamespaceServiceDeps are what the namespace handlers need. */
export interface NamespaceServiceDeps {
  kube: KubeClient;
  manager: NamespaceManager;
  /** Orders, locks and records every mutation (src/operations/). */
  operations: Operations;
  prefix: string;
}

const M = (name: string) => `${NamespaceService.typeName}/${name}`;

/** createNamespaceService implements paas.v1.NamespaceService. */
export function createNamespaceService(deps: NamespaceServiceDeps): ServiceImpl<typeof NamespaceService> {
  const { kube, manager, operations, prefix } = deps;
  return {
    async createNamespace(req, ctx) {
      const quota: QuotaSpec = {
        cpu: req.cpuLimit || DEFAULT_QUOTA.cpu,
        memory: req.memoryLimit || DEFAULT_QUOTA.memory,
        storage: req.storageLimit || DEFAULT_QUOTA.storage,
      };
      validateQuantity(quota.cpu, "cpu_limit");
      validateQuantity(quota.memory, "memory_limit");
      validateQuantity(quota.storage, "storage_limit");
      const options: NamespaceOptions = {};
      if (req.podSecurity !== "") {
        if (!isPodSecurityLevel(req.podSecurity)) {
          throw new PaasError("invalid_argument", 'pod_security must be "restricted" or "baseline"');
        }
        options.podSecurity = req.podSecurity;
      }
      return operations.mutate({
        method: M("CreateNamespace"),
        namespace: req.name,
        release: "",
        request: { schema: CreateNamespaceRequestSchema, message: req },
        response: CreateNamespaceResponseSchema,
        run: async () => {
          const { created, namespace } = await manager.ensure(req.name, quota, options);
          return create(CreateNamespaceResponseSchema, {
            namespace: toNamespace(namespace),
            created,
            message: created ? `Namespace ${req.name} created` : `Namespace ${req.name} already exists; quota updated`,
          });
        },
      }, ctx);
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
      return operations.mutate({
        method: M("DeleteNamespace"),
        namespace: req.name,
        release: "",
        request: { schema: DeleteNamespaceRequestSchema, message: req },
        response: DeleteNamespaceResponseSchema,
        run: async () => {
          await kube.deleteNamespace(req.name);
          return create(DeleteNamespaceResponseSchema, { message: `Namespace ${req.name} deleted` });
        },
      }, ctx);
    },
  };
}
