import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { Submitted } from "../operations/engine.ts";
import { toOperation } from "../mapping/operation-mapping.ts";

/**
 * answerOf is a mutation's response: the verb's response with its operation id (synchronous),
 * or, for an async call, the response with only the operation id and the queued operation.
 */
export function answerOf<Res extends DescMessage>(schema: Res, s: Submitted<Res>): MessageShape<Res> {
  if ("accepted" in s)
    return create(schema, { operationId: s.operationId, operation: toOperation(s.accepted) } as never);
  return { ...s.response, operationId: s.operationId };
}
