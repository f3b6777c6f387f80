import { clone, fromJsonString, toJson, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { canonicalJson, sha256Hex } from "../audit/fingerprint.ts";
import type { AuditRecord, StoredResult } from "../domain/audit.ts";
import { PaasError, type ErrorKind, type ErrorReason } from "../errors.ts";

/** emptyRecord is an audit record with every optional field blank. */
export function emptyRecord(): Omit<AuditRecord, "id" | "time" | "stage" | "operationId" | "method" | "replica"> {
  return {
    caller: "",
    sourceIp: "",
    userAgent: "",
    namespace: "",
    release: "",
    chartReference: "",
    chartVersion: "",
    valuesSha256: "",
    idempotencyKey: "",
    revisionBefore: 0,
    revisionAfter: 0,
    durationMs: 0,
    errorCode: "",
    errorMessage: "",
    requestId: "",
  };
}

/** fingerprintOf identifies a request for idempotency: the method and its canonical JSON without the key and without `async`. */
export function fingerprintOf<D extends DescMessage>(method: string, schema: D, message: MessageShape<D>): string {
  const copy = clone(schema, message) as Record<string, unknown>;
  if ("idempotencyKey" in copy) copy.idempotencyKey = "";
  if ("async" in copy) copy.async = false;
  return sha256Hex(`${method}\n${canonicalJson(toJson(schema, copy as MessageShape<D>))}`);
}

/** replay answers an idempotent retry with the first execution's stored result. */
export function replay<D extends DescMessage>(schema: D, result: StoredResult): MessageShape<D> {
  if (result.ok) return fromJsonString(schema, result.response);
  throw new PaasError(
    result.kind as ErrorKind,
    result.message,
    result.reason ? { reason: result.reason as ErrorReason } : {},
  );
}

/** describeError is a failure as records keep it; anything but a PaasError is INTERNAL, as callers see it. */
export function describeError(err: unknown): { kind: ErrorKind; message: string; reason?: string } {
  if (err instanceof PaasError)
    return { kind: err.kind, message: err.message, ...(err.reason ? { reason: err.reason } : {}) };
  return { kind: "internal", message: "internal error" };
}
