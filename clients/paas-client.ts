import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { ReleaseService } from "../gen/paas/v1/release_pb.js";
import { NamespaceService } from "../gen/paas/v1/namespace_pb.js";
import { OperationService } from "../gen/paas/v1/operation_pb.js";
import { AuditService } from "../gen/paas/v1/audit_pb.js";
import { WorkloadService } from "../gen/paas/v1/workload_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";

export * from "../gen/paas/v1/release_pb.js";
export * from "../gen/paas/v1/namespace_pb.js";
export * from "../gen/paas/v1/operation_pb.js";
export * from "../gen/paas/v1/workload_pb.js";

/** Protocol is the wire protocol a client speaks; the server answers all three on one port. */
export type Protocol = "connect" | "grpc" | "grpc-web";

/** PaasClientOptions configure createPaasClient. */
export interface PaasClientOptions {
  /** e.g. http://127.0.0.1:8000 */
  baseUrl: string;
  /** Sent as x-api-key on every call. */
  apiKey?: string;
  /** Default "connect". gRPC always uses HTTP/2; Connect and gRPC-Web default to HTTP/1.1. */
  protocol?: Protocol;
  httpVersion?: "1.1" | "2";
  /** Protobuf binary instead of JSON (Connect and gRPC-Web). */
  binary?: boolean;
  interceptors?: Interceptor[];
}

/** PaasClient groups typed clients for every service of the PaaS Operator. */
export interface PaasClient {
  releases: Client<typeof ReleaseService>;
  namespaces: Client<typeof NamespaceService>;
  operations: Client<typeof OperationService>;
  audit: Client<typeof AuditService>;
  workloads: Client<typeof WorkloadService>;
  health: Client<typeof Health>;
  transport: Transport;
}

/** createPaasClient returns typed clients over the chosen protocol. */
export function createPaasClient(options: PaasClientOptions): PaasClient {
  const { apiKey } = options;
  const auth: Interceptor = (next) => (req) => {
    if (apiKey !== undefined) req.header.set("x-api-key", apiKey);
    return next(req);
  };
  const interceptors = [auth, ...(options.interceptors ?? [])];
  const protocol = options.protocol ?? "connect";
  const transport =
    protocol === "grpc"
      ? createGrpcTransport({ baseUrl: options.baseUrl, interceptors })
      : protocol === "grpc-web"
        ? createGrpcWebTransport({
            baseUrl: options.baseUrl,
            httpVersion: options.httpVersion ?? "1.1",
            useBinaryFormat: options.binary ?? false,
            interceptors,
          })
        : createConnectTransport({
            baseUrl: options.baseUrl,
            httpVersion: options.httpVersion ?? "1.1",
            useBinaryFormat: options.binary ?? false,
            interceptors,
          });
  return {
    releases: createClient(ReleaseService, transport),
    namespaces: createClient(NamespaceService, transport),
    operations: createClient(OperationService, transport),
    audit: createClient(AuditService, transport),
    workloads: createClient(WorkloadService, transport),
    health: createClient(Health, transport),
    transport,
  };
}
