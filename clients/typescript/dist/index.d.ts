import { Code, ConnectError, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { ReleaseService } from "../gen/paas/v1/release_pb.js";
import { NamespaceService } from "../gen/paas/v1/namespace_pb.js";
import { OperationService } from "../gen/paas/v1/operation_pb.js";
import { AuditService } from "../gen/paas/v1/audit_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
export * from "../gen/paas/v1/release_pb.js";
export * from "../gen/paas/v1/namespace_pb.js";
export * from "../gen/paas/v1/operation_pb.js";
export * from "../gen/paas/v1/audit_pb.js";
export { HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
export { Code } from "@connectrpc/connect";
/** The ErrorInfo domain of the service's reasons. */
export declare const ERROR_DOMAIN = "paas.io";
/** Protocol is the wire protocol a client speaks; the server answers all three on one port. */
export type Protocol = "connect" | "grpc" | "grpc-web";
/** PaasClientOptions configure createPaasClient. */
export interface PaasClientOptions {
    /** e.g. http://127.0.0.1:8000 */
    baseUrl: string;
    /** Sent as x-api-key on every call. */
    apiKey?: string;
    /** Default "grpc". gRPC always uses HTTP/2; Connect and gRPC-Web default to HTTP/1.1. */
    protocol?: Protocol;
    httpVersion?: "1.1" | "2";
    /** Protobuf binary instead of JSON (Connect and gRPC-Web). */
    binary?: boolean;
    /**
     * Retries of a call that failed UNAVAILABLE, for calls that are safe to repeat: reads (and
     * other methods without side effects) and mutations that carry an idempotency key. Default 3.
     */
    retries?: number;
    /** First retry delay in ms, doubled each time (with jitter). Default 200. */
    retryDelayMs?: number;
    /** Deadline of each unary call in ms, unless the call gives its own timeoutMs. */
    timeoutMs?: number;
    interceptors?: Interceptor[];
}
/** PaasClient groups typed clients for every service of the PaaS Operator. */
export interface PaasClient {
    releases: Client<typeof ReleaseService>;
    namespaces: Client<typeof NamespaceService>;
    operations: Client<typeof OperationService>;
    audit: Client<typeof AuditService>;
    health: Client<typeof Health>;
    transport: Transport;
}
/**
 * PaasError is what every failed call rejects with: the gRPC code, its canonical name, the
 * service's ErrorInfo reason (e.g. "IDEMPOTENCY_KEY_REUSED") when it gave one, and the request id.
 */
export declare class PaasError extends ConnectError {
    /** "NOT_FOUND", "PERMISSION_DENIED", … */
    readonly codeName: string;
    readonly reason: string | undefined;
    readonly requestId: string | undefined;
    constructor(err: ConnectError, requestId?: string);
    /** Only errors made by this client (ConnectError's own check would accept every ConnectError). */
    static [Symbol.hasInstance](v: unknown): boolean;
}
/** codeName is the canonical gRPC name of a code: Code.NotFound → "NOT_FOUND". */
export declare function codeName(code: Code): string;
/** isPaasError narrows an unknown rejection. */
export declare function isPaasError(err: unknown): err is PaasError;
/** createPaasClient returns typed clients over the chosen protocol. */
export declare function createPaasClient(options: PaasClientOptions): PaasClient;
