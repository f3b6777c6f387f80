import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { ReleaseService } from "../gen/paas/v1/release_pb.js";
import { NamespaceService } from "../gen/paas/v1/namespace_pb.js";
import { OperationService } from "../gen/paas/v1/operation_pb.js";
import { AuditService } from "../gen/paas/v1/audit_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
export * from "../gen/paas/v1/release_pb.js";
export * from "../gen/paas/v1/namespace_pb.js";
export * from "../gen/paas/v1/operation_pb.js";
export * from "../gen/paas/v1/audit_pb.js";
export { HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
export { Code } from "@connectrpc/connect";
/** The ErrorInfo domain of the service's reasons. */
export const ERROR_DOMAIN = "paas.io";
/**
 * PaasError is what every failed call rejects with: the gRPC code, its canonical name, the
 * service's ErrorInfo reason (e.g. "IDEMPOTENCY_KEY_REUSED") when it gave one, and the request id.
 */
export class PaasError extends ConnectError {
    /** "NOT_FOUND", "PERMISSION_DENIED", … */
    codeName;
    reason;
    requestId;
    constructor(err, requestId) {
        super(err.rawMessage, err.code, err.metadata, undefined, err.cause);
        // Incoming details stay as received (findDetails decodes them); `name` stays
        // "ConnectError", so that Connect (and ConnectError.from) treat it as one.
        this.details = err.details;
        this.codeName = codeName(err.code);
        this.reason = err.findDetails(ErrorInfoSchema).find((d) => d.domain === ERROR_DOMAIN)?.reason || undefined;
        this.requestId = requestId ?? err.metadata.get("x-request-id") ?? undefined;
    }
    /** Only errors made by this client (ConnectError's own check would accept every ConnectError). */
    static [Symbol.hasInstance](v) {
        return typeof v === "object" && v !== null && Object.prototype.isPrototypeOf.call(PaasError.prototype, v);
    }
}
/** codeName is the canonical gRPC name of a code: Code.NotFound → "NOT_FOUND". */
export function codeName(code) {
    return code === 0
        ? "OK"
        : (Code[code] ?? "UNKNOWN")
            .replace(/([a-z])([A-Z])/g, "$1_$2")
            .toUpperCase()
            .replace("CANCELED", "CANCELLED");
}
/** isPaasError narrows an unknown rejection. */
export function isPaasError(err) {
    return err instanceof PaasError;
}
/** createPaasClient returns typed clients over the chosen protocol. */
export function createPaasClient(options) {
    const { apiKey } = options;
    const retries = options.retries ?? 3;
    const baseDelay = options.retryDelayMs ?? 200;
    const auth = (next) => (req) => {
        if (apiKey !== undefined)
            req.header.set("x-api-key", apiKey);
        return next(req);
    };
    // Outermost: every call carries a request id (the server logs it; a PaasError reports it), and
    // every failure leaves as a PaasError.
    const typed = (next) => async (req) => {
        if (!req.header.has("x-request-id"))
            req.header.set("x-request-id", randomUUID());
        const id = req.header.get("x-request-id") ?? undefined;
        try {
            const res = await next(req);
            if (!res.stream)
                return res;
            const messages = res.message;
            async function* wrapped() {
                try {
                    yield* messages;
                }
                catch (err) {
                    throw toPaasError(err, id);
                }
            }
            return { ...res, message: wrapped() };
        }
        catch (err) {
            throw toPaasError(err, id);
        }
    };
    const retry = (next) => async (req) => {
        if (req.stream || !safeToRepeat(req.method, req.message, req.header))
            return next(req);
        for (let attempt = 0;; attempt++) {
            try {
                return await next(req);
            }
            catch (err) {
                const code = ConnectError.from(err).code;
                if (code !== Code.Unavailable || attempt >= retries || req.signal.aborted)
                    throw err;
                const delay = baseDelay * 2 ** attempt * (0.5 + Math.random() / 2);
                await new Promise((r) => setTimeout(r, delay));
            }
        }
    };
    const interceptors = [typed, retry, auth, ...(options.interceptors ?? [])];
    const protocol = options.protocol ?? "grpc";
    const common = { baseUrl: options.baseUrl, interceptors };
    const transport = protocol === "grpc"
        ? createGrpcTransport(common)
        : protocol === "grpc-web"
            ? createGrpcWebTransport({
                ...common,
                httpVersion: options.httpVersion ?? "1.1",
                useBinaryFormat: options.binary ?? false,
            })
            : createConnectTransport({
                ...common,
                httpVersion: options.httpVersion ?? "1.1",
                useBinaryFormat: options.binary ?? false,
            });
    const t = options.timeoutMs;
    return {
        releases: typedClient(ReleaseService, createClient(ReleaseService, transport), t),
        namespaces: typedClient(NamespaceService, createClient(NamespaceService, transport), t),
        operations: typedClient(OperationService, createClient(OperationService, transport), t),
        audit: typedClient(AuditService, createClient(AuditService, transport), t),
        health: typedClient(Health, createClient(Health, transport), t),
        transport,
    };
}
/**
 * typedClient makes every failure a PaasError, including the ones Connect raises outside the
 * interceptors (a stream the caller aborted, a deadline that passed while reading it).
 */
function typedClient(service, client, timeoutMs) {
    return new Proxy(client, {
        get(target, prop, receiver) {
            const fn = Reflect.get(target, prop, receiver);
            if (typeof fn !== "function")
                return fn;
            // The default deadline applies to unary calls only: a watch may last for hours.
            const unary = typeof prop === "string" && service.method[prop]?.methodKind === "unary";
            return (...args) => {
                if (unary && timeoutMs !== undefined) {
                    const opts = (args[1] ?? {});
                    args[1] = opts.timeoutMs === undefined ? { ...opts, timeoutMs } : opts;
                }
                const result = fn.apply(target, args);
                if (result instanceof Promise)
                    return result.catch((err) => Promise.reject(toPaasError(err)));
                if (result && typeof result === "object" && Symbol.asyncIterator in result)
                    return typedStream(result);
                return result;
            };
        },
    });
}
async function* typedStream(stream) {
    try {
        yield* stream;
    }
    catch (err) {
        throw toPaasError(err);
    }
}
const READ = /^(Get|List|Check|Wait)[A-Z]|^Check$/;
/**
 * safeToRepeat: methods the protos mark without side effects, reads by name (Get…, List…,
 * Check), and mutations with an idempotency key (the server answers a repeat from the stored result).
 */
function safeToRepeat(method, message, header) {
    if (method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS ||
        method.idempotency === MethodOptions_IdempotencyLevel.IDEMPOTENT)
        return true;
    if (READ.test(method.name))
        return true;
    const key = message?.["idempotencyKey"];
    return (typeof key === "string" && key !== "") || header.has("idempotency-key");
}
function toPaasError(err, requestId) {
    return err instanceof PaasError ? err : new PaasError(ConnectError.from(err), requestId);
}
