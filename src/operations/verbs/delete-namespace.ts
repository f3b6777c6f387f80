import { create } from "@bufbuild/protobuf";
import { DeleteNamespaceRequestSchema, DeleteNamespaceResponseSchema } from "../../../gen/paas/v1/namespace_pb.js";
import type { Verb } from "../verb.ts";
import { NAMESPACE_SERVICE, type VerbDeps } from "./verb-deps.ts";

/** deleteNamespace: steps wait-for-release, delete, record. */
export function deleteNamespace(
  deps: VerbDeps,
): Verb<typeof DeleteNamespaceRequestSchema, typeof DeleteNamespaceResponseSchema> {
  return {
    kind: "delete-namespace",
    method: `${NAMESPACE_SERVICE}/DeleteNamespace`,
    request: DeleteNamespaceRequestSchema,
    response: DeleteNamespaceResponseSchema,
    stoppable: false,
    prepare(req) {
      return {
        namespace: req.name,
        release: "",
        params: { name: req.name },
        async perform(run) {
          await run.step("delete", () => deps.kube.deleteNamespace(req.name));
          return create(DeleteNamespaceResponseSchema, { message: `Namespace ${req.name} deleted` });
        },
      };
    },
  };
}
