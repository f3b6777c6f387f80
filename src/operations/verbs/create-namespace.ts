import { create } from "@bufbuild/protobuf";
import { CreateNamespaceRequestSchema, CreateNamespaceResponseSchema } from "../../../gen/paas/v1/namespace_pb.js";
import { validateQuantity } from "../../domain/validation.ts";
import { isPodSecurityLevel } from "../../domain/pod-security-levels.ts";
import { PaasError } from "../../errors.ts";
import type { NamespaceOptions, QuotaSpec } from "../../kube/kube-types.ts";
import { toNamespace } from "../../mapping/release-mapping.ts";
import { DEFAULT_QUOTA } from "../namespace-manager.ts";
import type { Verb } from "../verb.ts";
import { NAMESPACE_SERVICE, type VerbDeps } from "./verb-deps.ts";

/** createNamespace: steps wait-for-release, namespace, limit-range, quota, network-policy, deployer-identity, ready, record. */
export function createNamespace(
  deps: VerbDeps,
): Verb<typeof CreateNamespaceRequestSchema, typeof CreateNamespaceResponseSchema> {
  return {
    kind: "create-namespace",
    method: `${NAMESPACE_SERVICE}/CreateNamespace`,
    request: CreateNamespaceRequestSchema,
    response: CreateNamespaceResponseSchema,
    stoppable: false,
    prepare(req) {
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
      return {
        namespace: req.name,
        release: "",
        params: {
          name: req.name,
          cpu_limit: quota.cpu,
          memory_limit: quota.memory,
          storage_limit: quota.storage,
          pod_security: req.podSecurity,
        },
        async perform(run) {
          const { created, namespace } = await deps.namespaces.ensure(req.name, quota, {
            ...options,
            steps: run.steps,
          });
          return create(CreateNamespaceResponseSchema, {
            namespace: toNamespace(namespace),
            created,
            message: created ? `Namespace ${req.name} created` : `Namespace ${req.name} already exists; quota updated`,
          });
        },
      };
    },
  };
}
