import { createApp } from "./app.ts";
import { openAuditStore } from "./audit/open-store.ts";
import { LeaseManager } from "./kube/leases/leases.ts";
import { createReleaseRecovery } from "./kube/storage/release-recovery.ts";
import { Reconciler } from "./operations/reconciler.ts";
import { ConfigError, loadConfig, type Config } from "./config.ts";
import { HealthMonitor } from "./health/health-monitor.ts";
import { createHelmCli } from "./helm/cli.ts";
import { createKubeClient, DEFAULT_MANAGED_LABEL, defaultKubeConfig } from "./kube/kube-client.ts";
import { createWorkloadClient } from "./kube/workloads/workload-client.ts";
import { createTenantAccess } from "./kube/tenancy/kube-tenant-access.ts";
import { Lifecycle } from "./operations/lifecycle.ts";
import { listen } from "./server/listener.ts";
import { createLogger } from "./log.ts";
import { enableProcessMetrics, setInfo } from "./metrics/metrics.ts";
import { metricsOnly } from "./metrics/metrics-route.ts";
import { readFileSync } from "node:fs";

// Helm is sent SIGTERM this long before the grace period ends, so that it can record
// the release as failed instead of leaving it pending.
const HELM_TERM_MARGIN_MS = 15_000;

/** main: configuration → dependencies → listen → graceful shutdown on SIGTERM/SIGINT. */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`paas-operator: invalid configuration: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  if (config.apiKeys.length === 0 && !config.apiKeysFile)
    logger.warn("ALLOW_UNAUTHENTICATED is set: every caller is accepted without an API key");
  if (!config.catalog.restricted)
    logger.warn(
      "no chart catalogue (CHART_CATALOG_FILE, CHART_CATALOG): every well-formed http(s) and oci:// chart source is allowed; configure one",
    );
  else logger.info({ sources: config.catalog.sources }, "chart catalogue");

  const lifecycle = new Lifecycle();
  // Tenant isolation: helm impersonates each namespace's deployer ServiceAccount and every
  // install/upgrade goes through the render guard (src/helm/post-renderer.ts).
  const kubeConfig = defaultKubeConfig();
  const helm = createHelmCli({
    binary: config.helmBinary,
    timeoutSeconds: config.helmTimeoutSeconds,
    plainHttpRegistries: config.plainHttpRegistries,
    logger,
    tenant: createTenantAccess({ kubeConfig, managedLabel: DEFAULT_MANAGED_LABEL }),
  });
  const kube = createKubeClient({
    logger,
    kubeConfig,
    podSecurity: config.podSecurityLevel,
    ingressNamespaceSelector: config.ingressNamespaceSelector,
  });
  const monitor = new HealthMonitor({ helm, kube, lifecycle, logger, intervalMs: config.healthIntervalMs });

  // The audit log must be writable before any mutation is accepted: a store that cannot be
  // opened or migrated stops the process (Kubernetes restarts it).
  let audit;
  try {
    audit = await openAuditStore({ databaseUrl: config.auditDatabaseUrl, sqlitePath: config.auditSqlitePath, logger });
  } catch (err) {
    process.stderr.write(`paas-operator: audit store: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  const locks = new LeaseManager({
    kubeConfig,
    namespace: config.leaseNamespace,
    durationSeconds: config.leaseDurationSeconds,
    replica: config.replica,
    logger,
  });
  await ensureLeaseNamespace(locks, logger);
  locks.watchHolders();
  const recovery = createReleaseRecovery({ kubeConfig, logger });
  const replicaTtlMs = config.heartbeatMs * 3;
  // WorkloadService's calls go out as each namespace's deployer (impersonation), like helm's.
  const workloads = createWorkloadClient(kubeConfig);
  const app = createApp({
    ...config,
    helm,
    kube,
    logger,
    lifecycle,
    monitor,
    audit,
    locks,
    recovery,
    replicaTtlMs,
    workloads,
    metricsOnMainPort: config.metricsPort === undefined,
  });
  enableProcessMetrics();
  const reconciler = new Reconciler({
    repair: app.repair,
    engine: app.engine,
    audit,
    locks,
    recovery,
    replica: config.replica,
    prefix: config.namespacePrefix,
    heartbeatMs: config.heartbeatMs,
    intervalMs: config.reconcileIntervalMs,
    minPendingAgeMs: 2 * config.leaseDurationSeconds * 1000,
    logger,
  });
  await monitor.start();
  // Start-up recovery: stuck releases without a live Lease, intents of dead replicas.
  await reconciler.start();
  const listener = await listen(app.handler, config.host, config.port);
  app.webhookSender.start();
  const health = monitor.current();
  setInfo(serviceVersion(), health.helmVersion);
  // METRICS_PORT: the metrics on a port of their own (e.g. reachable by the scraper only).
  const metricsListener =
    config.metricsPort === undefined ? undefined : await listen(metricsOnly, config.host, config.metricsPort);
  if (metricsListener) logger.info({ host: config.host, port: metricsListener.port }, "metrics listening");
  logger.info(
    {
      host: config.host,
      port: listener.port,
      helmVersion: health.helmVersion,
      serving: health.serving,
      prefix: config.namespacePrefix,
      replica: config.replica,
      audit: audit.kind,
    },
    "listening",
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    const started = Date.now();
    logger.info(
      { signal, graceMs: config.shutdownGraceMs },
      "shutting down: refusing new mutations, finishing running calls",
    );
    lifecycle.startDraining();
    monitor.notify();
    listener.stopAccepting();
    listener.drain();
    const idle = async () => {
      while (listener.inflight > 0 || app.queue.pendingKeys > 0 || app.engine.running > 0) await sleep(100);
    };
    const termAt = Math.max(0, config.shutdownGraceMs - HELM_TERM_MARGIN_MS);
    const finished = await Promise.race([idle().then(() => true), sleep(termAt).then(() => false)]);
    if (!finished) {
      logger.warn({ running: app.queue.active }, "grace period nearly over: sending SIGTERM to running helm processes");
      lifecycle.terminateHelm();
      // Wait for helm to exit and for the answers to the calls it served to be written.
      await Promise.race([idle(), sleep(HELM_TERM_MARGIN_MS - 2000)]);
    }
    listener.closeAll();
    metricsListener?.stopAccepting();
    metricsListener?.closeAll();
    monitor.stop();
    // Every operation wrote its outcome and gave its Lease up when it ended; this is the
    // safety net for any still held.
    await reconciler.stop();
    await app.webhookSender.stop();
    app.webhooks.close();
    await locks.releaseAll();
    await helm.close();
    await audit.close().catch(() => undefined);
    logger.info({ ms: Date.now() - started }, "stopped");
    logger.flush();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

/** ensureLeaseNamespace creates LEASE_NAMESPACE when absent; mutations fail UNAVAILABLE until it exists. */
async function ensureLeaseNamespace(locks: LeaseManager, logger: ReturnType<typeof createLogger>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await locks.ensureNamespace();
      return;
    } catch (err) {
      if (attempt >= 5) {
        logger.error(
          { err: err instanceof Error ? err.message : String(err) },
          "the Lease namespace could not be ensured; mutations will fail until it exists",
        );
        return;
      }
      await sleep(1000 * attempt);
    }
  }
}

/** serviceVersion is package.json's version. */
function serviceVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version?: string };
    return pkg.version ?? "unknown";
  } catch {
    return "unknown";
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

await main();
