import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * The service's Prometheus metrics: one registry per process, served at /metrics
 * (src/metrics/metrics-route.ts). Labels are bounded sets only — RPC names, helm verbs,
 * operation kinds, states and codes; never a namespace, release, caller or key.
 *
 * RPC metrics keep the names and labels of the gRPC ecosystem (go-grpc-prometheus,
 * grpc-ecosystem/go-grpc-middleware): every protocol the port speaks, REST included (labelled
 * with the RPC it is transcoded onto), is counted by the observability interceptor.
 */
export const registry = new Registry();

/** RPC latency buckets (seconds): from a cached read to a helm install that waits. */
const RPC_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
/** helm run buckets (seconds): `helm version` takes tens of ms, an install with --wait minutes. */
const HELM_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** Wait buckets (seconds): usually nothing, at most OPERATION_WAIT_TIMEOUT. */
const WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300];
/** Audit store write buckets (seconds): SQLite sub-ms, PostgreSQL a few ms. */
const STORE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

const RPC_LABELS = ["grpc_type", "grpc_service", "grpc_method"] as const;

export const metrics = {
  rpcStarted: new Counter({
    name: "grpc_server_started_total",
    help: "Total number of RPCs started on the server.",
    labelNames: RPC_LABELS,
    registers: [registry],
  }),
  rpcHandled: new Counter({
    name: "grpc_server_handled_total",
    help: "Total number of RPCs completed on the server, regardless of success or failure.",
    labelNames: [...RPC_LABELS, "grpc_code"],
    registers: [registry],
  }),
  rpcHandling: new Histogram({
    name: "grpc_server_handling_seconds",
    help: "Histogram of response latency (seconds) of unary RPCs handled by the server (server streams are not observed).",
    labelNames: RPC_LABELS,
    buckets: RPC_BUCKETS,
    registers: [registry],
  }),
  rpcActiveStreams: new Gauge({
    name: "grpc_server_active_streams",
    help: "Server-streaming RPCs (watches) open now.",
    labelNames: RPC_LABELS,
    registers: [registry],
  }),
  rpcMsgSent: new Counter({
    name: "grpc_server_msg_sent_total",
    help: "Total number of stream messages sent by the server.",
    labelNames: RPC_LABELS,
    registers: [registry],
  }),
  helmRuns: new Counter({
    name: "paas_helm_runs_total",
    help: "helm processes that ended, by verb and outcome (success, failure, timeout, aborted).",
    labelNames: ["verb", "outcome"],
    registers: [registry],
  }),
  helmDuration: new Histogram({
    name: "paas_helm_run_duration_seconds",
    help: "Duration of helm processes, by verb.",
    labelNames: ["verb"],
    buckets: HELM_BUCKETS,
    registers: [registry],
  }),
  helmRunning: new Gauge({
    name: "paas_helm_runs_running",
    help: "helm processes running now, by verb.",
    labelNames: ["verb"],
    registers: [registry],
  }),
  queueWait: new Histogram({
    name: "paas_queue_wait_seconds",
    help: "How long an operation waited in its queue (behind its release, then for a slot), by queue and outcome (started, gave_up).",
    labelNames: ["queue", "outcome"],
    buckets: WAIT_BUCKETS,
    registers: [registry],
  }),
  leaseWait: new Histogram({
    name: "paas_lease_wait_seconds",
    help: "How long an operation waited for its release's Kubernetes Lease, by outcome (acquired, failed).",
    labelNames: ["outcome"],
    buckets: WAIT_BUCKETS,
    registers: [registry],
  }),
  operations: new Counter({
    name: "paas_operations_total",
    help: "Operations that ended, by kind and final state (succeeded, failed, cancelled).",
    labelNames: ["kind", "state"],
    registers: [registry],
  }),
  releasesRepaired: new Counter({
    name: "paas_releases_repaired_total",
    help: "Releases found pending with no live operation and marked failed.",
    registers: [registry],
  }),
  auditWrite: new Histogram({
    name: "paas_audit_store_write_seconds",
    help: "Latency of audit store writes, by store (sqlite, postgres) and operation.",
    labelNames: ["store", "op"],
    buckets: STORE_BUCKETS,
    registers: [registry],
  }),
  auditWriteFailures: new Counter({
    name: "paas_audit_store_write_failures_total",
    help: "Audit store writes that failed, by store and operation.",
    labelNames: ["store", "op"],
    registers: [registry],
  }),
  idempotentReplays: new Counter({
    name: "paas_idempotent_replays_total",
    help: "Mutations answered from the stored result of an earlier request with the same idempotency key, by RPC.",
    labelNames: ["method"],
    registers: [registry],
  }),
  kubeWatches: new Gauge({
    name: "paas_kube_watches_active",
    help: "Upstream Kubernetes list+watch loops running now.",
    registers: [registry],
  }),
  kubeRelists: new Counter({
    name: "paas_kube_watch_relists_total",
    help: "Lists done again by a Kubernetes watch loop after its resourceVersion expired (410 Gone).",
    registers: [registry],
  }),
  info: new Gauge({
    name: "paas_operator_info",
    help: "Versions of the service, Helm and Node.js (always 1).",
    labelNames: ["version", "helm_version", "node_version"],
    registers: [registry],
  }),
};

let defaultsOn = false;

/**
 * prom-client's default gauges named like counters (`promtool check metrics` refuses them);
 * the same numbers stay available by type in nodejs_active_handles, _requests and _resources.
 */
const MISNAMED_DEFAULTS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];

/** enableProcessMetrics adds prom-client's process and Node.js metrics (once per process). */
export function enableProcessMetrics(): void {
  if (defaultsOn) return;
  defaultsOn = true;
  collectDefaultMetrics({ register: registry });
  for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(name);
}

/** setInfo records the versions in paas_operator_info (one series). */
export function setInfo(version: string, helmVersion: string): void {
  metrics.info.reset();
  metrics.info.set({ version, helm_version: helmVersion || "unknown", node_version: process.version }, 1);
}

/** grpcType is the grpc_type label of a Connect method kind. */
export function grpcType(kind: string): string {
  switch (kind) {
    case "server_streaming":
      return "server_stream";
    case "client_streaming":
      return "client_stream";
    case "bidi_streaming":
      return "bidi_stream";
    default:
      return "unary";
  }
}

/** seconds since a performance.now() mark. */
export function since(started: number): number {
  return (performance.now() - started) / 1000;
}
