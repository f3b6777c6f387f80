import { createClient, createRouterTransport } from "@connectrpc/connect";
import pino from "pino";
import { createApp, type AppDeps } from "../../src/app.ts";
import { HealthMonitor } from "../../src/health/health-monitor.ts";
import { Lifecycle } from "../../src/operations/lifecycle.ts";
import { ReleaseService } from "../../gen/paas/v1/release_pb.js";
import { NamespaceService } from "../../gen/paas/v1/namespace_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { OperationService } from "../../gen/paas/v1/operation_pb.js";
import { FakeCluster, FakeHelm, FakeKube, FakeLocks, FakeRecovery } from "./fakes.ts";
import { SqliteAuditStore } from "../../src/audit/sqlite-store.ts";

export const API_KEY = "test-key-0123456789abcdef";
export const PREFIX = "paas-ws-";

/** LogLines collects what the service logs, to assert on it. */
export class LogLines {
  lines: string[] = [];
  write(line: string): void {
    this.lines.push(line);
  }
  get text(): string {
    return this.lines.join("");
  }
}

/** createHarness builds the real request path over fake adapters. */
export async function createHarness(overrides: Partial<AppDeps> = {}) {
  const cluster = new FakeCluster();
  const helm = new FakeHelm(cluster);
  const kube = new FakeKube(cluster);
  const lifecycle = new Lifecycle();
  const logs = new LogLines();
  const logger = pino({ level: "debug" }, logs);
  const monitor = new HealthMonitor({ helm, kube, lifecycle, logger, intervalMs: 60_000 });
  await monitor.check();
  // The real SQLite audit store, in memory: every mutation in a service test is audited.
  const audit = new SqliteAuditStore({ path: ":memory:" });
  await audit.migrate();
  const locks = new FakeLocks();
  const recovery = new FakeRecovery(cluster);
  const app = createApp({
    helm,
    kube,
    logger,
    lifecycle,
    monitor,
    apiKeys: [API_KEY],
    namespacePrefix: PREFIX,
    repositories: { stable: "https://charts.example.test/stable" },
    helmTimeoutSeconds: 300,
    maxHelmTimeoutSeconds: 3600,
    helmConcurrency: 4,
    maxBodyBytes: 1024 * 1024,
    audit,
    locks,
    recovery,
    replica: locks.replica,
    operationWaitMs: 30_000,
    idempotencyTtlMs: 24 * 3600_000,
    replicaTtlMs: 15_000,
    ...overrides,
  });
  const transport = (apiKey: string | null = API_KEY) =>
    createRouterTransport(app.routes, {
      router: { interceptors: app.interceptors },
      transport: {
        interceptors: [
          (next) => (req) => {
            if (apiKey !== null) req.header.set("x-api-key", apiKey);
            return next(req);
          },
        ],
      },
    });
  const clients = (apiKey: string | null = API_KEY) => {
    const t = transport(apiKey);
    return {
      releases: createClient(ReleaseService, t),
      namespaces: createClient(NamespaceService, t),
      operations: createClient(OperationService, t),
      health: createClient(Health, t),
    };
  };
  return { app, cluster, helm, kube, lifecycle, monitor, logs, audit, locks, recovery, clients, ...clients() };
}

/** managedNamespace creates a managed namespace in the fake cluster. */
export function managedNamespace(cluster: FakeCluster, name: string): void {
  cluster.namespaces.set(name, { quota: { cpu: "2", memory: "4Gi", storage: "20Gi" }, managed: true });
}
