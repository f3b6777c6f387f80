import type { ConnectRouter } from "@connectrpc/connect";
import type { Logger } from "pino";
import { ReleaseService } from "../gen/paas/v1/release_pb.js";
import { NamespaceService } from "../gen/paas/v1/namespace_pb.js";
import { AuditService } from "../gen/paas/v1/audit_pb.js";
import { createAuditService } from "./services/audit-service.ts";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../gen/grpc/reflection/v1/reflection_pb.js";
import type { HealthMonitor } from "./health/health-monitor.ts";
import type { HelmClient } from "./helm/helm-client.ts";
import { createDocsRoutes } from "./docs/docs-routes.ts";
import { createHttpRoutes } from "./server/http-routes.ts";
import { apiKeyInterceptor, scopeInterceptor } from "./interceptors/api-key.ts";
import type { NamedKey } from "./auth/key-file.ts";
import { KeyStore } from "./auth/key-store.ts";
import { ChartCatalog } from "./catalog/catalog.ts";
import type { ValuesLimits } from "./domain/validation.ts";
import { namespacePrefixInterceptor } from "./interceptors/namespace-prefix.ts";
import { observabilityInterceptor } from "./interceptors/observability.ts";
import type { KubeClient } from "./kube/kube-types.ts";
import type { Lifecycle } from "./operations/lifecycle.ts";
import { OperationQueue } from "./operations/operation-queue.ts";
import { OperationEngine } from "./operations/engine.ts";
import { NamespaceManager } from "./operations/namespace-manager.ts";
import { ReleaseRepair } from "./operations/release-repair.ts";
import { allVerbs, createVerbs, createWorkloadVerbs } from "./operations/verbs/all-verbs.ts";
import { WorkloadService } from "../gen/paas/v1/workload_pb.js";
import type { WorkloadClient } from "./kube/workloads/workload-types.ts";
import { createWorkloadService } from "./services/workload-service.ts";
import { OperationService } from "../gen/paas/v1/operation_pb.js";
import { WebhookService } from "../gen/paas/v1/webhook_pb.js";
import { createWebhookService } from "./services/webhook-service.ts";
import { createOperationService } from "./services/operation-service.ts";
import type { ReleaseLocks, ReleaseRecovery } from "./domain/ports.ts";
import type { AuditStore } from "./domain/audit.ts";
import { auditDenialsInterceptor } from "./interceptors/audit-denials.ts";
import { createHealthService } from "./services/health-service.ts";
import { createNamespaceService } from "./services/namespace-service.ts";
import { createReflectionService } from "./services/reflection-service.ts";
import { createReleaseService } from "./services/release-service.ts";
import { createRestHandler } from "./rest/handler.ts";
import { contextValuesOf } from "./server/request-context.ts";
import { bodyLimits } from "./server/body-limit.ts";
import { reclassifyUndecodableRequests } from "./server/request-gate.ts";
import { createRpcHandler, type NodeHandler } from "./server/rpc-handler.ts";
import { outboxPlanner, stepListener } from "./webhooks/events.ts";
import { DEFAULT_SCHEDULE_MS } from "./webhooks/schedule.ts";
import { WebhookSender } from "./webhooks/sender.ts";
import { SubscriptionRegistry, type Subscription } from "./webhooks/subscriptions.ts";

/** AppDeps are the adapters and settings the request path is built from. */
export interface AppDeps {
  helm: HelmClient;
  kube: KubeClient;
  logger: Logger;
  lifecycle: Lifecycle;
  monitor: HealthMonitor;
  apiKeys: string[];
  namespacePrefix: string;
  repositories: Record<string, string>;
  helmTimeoutSeconds: number;
  maxHelmTimeoutSeconds: number;
  helmConcurrency: number;
  maxBodyBytes: number;
  /** API_KEYS_FILE: scoped keys, watched and reloaded; namedKeys is its content at start (read here when absent). */
  apiKeysFile?: string;
  namedKeys?: NamedKey[];
  /** How long key-file change events are collected before a reload, ms (tests shorten it). */
  apiKeysReloadDebounceMs?: number;
  /** The chart catalogue; absent: every well-formed source is allowed (repositories still name sources). */
  catalog?: ChartCatalog;
  valuesLimits?: ValuesLimits;
  /** The audit log and idempotency keys (src/audit/). */
  audit: AuditStore;
  /** One writer per release across replicas (Kubernetes Leases). */
  locks: ReleaseLocks;
  /** Repairs releases left pending by dead operations. */
  recovery: ReleaseRecovery;
  /** This process's identity in Leases and audit records. */
  replica: string;
  /** How long a mutation waits for its release, ms. */
  operationWaitMs: number;
  idempotencyTtlMs: number;
  /** A replica silent for longer is dead (its open audit intents may be closed), ms. */
  replicaTtlMs: number;
  /** After a lost Lease, how long helm gets to stop before the caller is answered, ms (tests shorten it). */
  lostAnswerGraceMs?: number;
  /** How long ended operations are kept, ms (OPERATION_RETENTION). */
  operationRetentionMs?: number;
  /** How often cancellations asked on other replicas are looked for, ms (tests shorten it). */
  operationPollMs?: number;
  /** WorkloadService's Kubernetes calls (as each namespace's deployer); absent: the service is not served. */
  workloads?: WorkloadClient;
  /** WORKLOAD_MAX_REPLICAS (default 20). */
  workloadMaxReplicas?: number;
  /** Poll interval of the workload verbs' waits, ms (tests shorten it). */
  workloadPollMs?: number;
  /** WEBHOOKS_FILE and the subscriptions it held at start. */
  webhooksFile?: string;
  webhookSubscriptions?: Subscription[];
  webhooksAllowLoopback?: boolean;
  webhookScheduleMs?: number[];
  webhookPollMs?: number;
  webhookTimeoutMs?: number;
  /** Serve GET /metrics on this port without a key (METRICS_PORT not set). */
  metricsOnMainPort?: boolean;
}

/**
 * App is the request path: Connect routes for every service, the old operator's REST API
 * transcoded onto the same routes and interceptors, plus the plain HTTP endpoints.
 */
export interface App {
  routes: (router: ConnectRouter) => void;
  /** interceptors, outermost first; the in-memory test transport uses the same list. */
  interceptors: ReturnType<typeof observabilityInterceptor>[];
  handler: NodeHandler;
  queue: OperationQueue;
  /** Runs every mutation as an operation: idempotency, audit, queue, Lease, repair, steps. */
  engine: OperationEngine;
  /** Repairs releases left pending by dead operations (the reconciler uses it too). */
  repair: ReleaseRepair;
  /** The API keys; close() stops watching API_KEYS_FILE. */
  keys: KeyStore;
  /** Webhook subscriptions (WEBHOOKS_FILE, watched) and the outbox's sender (started by main). */
  webhooks: SubscriptionRegistry;
  webhookSender: WebhookSender;
}

/** createApp wires services, interceptors and HTTP routes; it opens no port. */
export function createApp(deps: AppDeps): App {
  const queue = new OperationQueue(deps.helmConcurrency);
  const allowLoopback = deps.webhooksAllowLoopback ?? false;
  const webhooks = new SubscriptionRegistry({
    ...(deps.webhooksFile ? { file: deps.webhooksFile } : {}),
    ...(deps.webhookSubscriptions ? { subscriptions: deps.webhookSubscriptions } : {}),
    parse: { prefix: deps.namespacePrefix, allowLoopback },
  });
  webhooks.watch(deps.logger, deps.apiKeysReloadDebounceMs);
  const webhookSender = new WebhookSender({
    store: deps.audit,
    subscriptions: webhooks,
    replica: deps.replica,
    logger: deps.logger,
    scheduleMs: deps.webhookScheduleMs ?? DEFAULT_SCHEDULE_MS,
    pollMs: deps.webhookPollMs ?? 1000,
    timeoutMs: deps.webhookTimeoutMs ?? 15_000,
    allowLoopback,
  });
  // Operations that end write their deliveries in the same transaction.
  deps.audit.setOutboxPlanner(
    outboxPlanner(
      () => webhooks.all,
      () => webhookSender.disabled,
    ),
  );
  const repair = new ReleaseRepair({
    audit: deps.audit,
    recovery: deps.recovery,
    replica: deps.replica,
    replicaTtlMs: deps.replicaTtlMs,
    logger: deps.logger,
  });
  const engine = new OperationEngine({
    queue,
    // Namespace calls are short API calls: they must not wait for helm slots.
    namespaceQueue: new OperationQueue(16, "namespace"),
    lifecycle: deps.lifecycle,
    store: deps.audit,
    locks: deps.locks,
    repair,
    replica: deps.replica,
    waitTimeoutMs: deps.operationWaitMs,
    idempotencyTtlMs: deps.idempotencyTtlMs,
    replicaTtlMs: deps.replicaTtlMs,
    ...(deps.lostAnswerGraceMs !== undefined ? { lostAnswerGraceMs: deps.lostAnswerGraceMs } : {}),
    ...(deps.operationRetentionMs !== undefined ? { retentionMs: deps.operationRetentionMs } : {}),
    ...(deps.operationPollMs !== undefined ? { pollMs: deps.operationPollMs } : {}),
    onStep: stepListener(
      () => webhooks.all,
      () => webhookSender.disabled,
      (rows) => deps.audit.enqueueDeliveries(rows),
      (err) =>
        deps.logger.warn(
          { err: err instanceof Error ? err.message : String(err) },
          "webhooks: a step event was not written",
        ),
    ),
    logger: deps.logger,
  });
  const verbs = createVerbs({
    helm: deps.helm,
    kube: deps.kube,
    namespaces: new NamespaceManager(deps.kube),
    catalog: deps.catalog ?? ChartCatalog.allowAll(deps.repositories),
    recovery: deps.recovery,
    repair,
    ...(deps.valuesLimits ? { valuesLimits: deps.valuesLimits } : {}),
    helmTimeoutSeconds: deps.helmTimeoutSeconds,
    maxHelmTimeoutSeconds: deps.maxHelmTimeoutSeconds,
  });
  engine.register(...allVerbs(verbs));
  const workloadVerbs = deps.workloads
    ? createWorkloadVerbs({
        workloads: deps.workloads,
        kube: deps.kube,
        maxReplicas: deps.workloadMaxReplicas ?? 20,
        waitTimeoutMs: deps.helmTimeoutSeconds * 1000,
        ...(deps.workloadPollMs !== undefined ? { pollMs: deps.workloadPollMs } : {}),
      })
    : undefined;
  if (workloadVerbs) engine.register(...allVerbs(workloadVerbs));
  const workload =
    deps.workloads && workloadVerbs
      ? createWorkloadService({ kube: deps.kube, workloads: deps.workloads, engine, verbs: workloadVerbs })
      : undefined;
  const release = createReleaseService({
    helm: deps.helm,
    kube: deps.kube,
    engine,
    verbs,
    locks: deps.locks,
    lifecycle: deps.lifecycle,
  });
  const namespace = createNamespaceService({ kube: deps.kube, engine, verbs, prefix: deps.namespacePrefix });
  const operationService = createOperationService({ engine, store: deps.audit, namespacePrefix: deps.namespacePrefix });
  const health = createHealthService(deps.monitor, deps.lifecycle.streamsSignal);
  const auditService = createAuditService({ store: deps.audit, namespacePrefix: deps.namespacePrefix });
  const reflection = createReflectionService([
    ReleaseService,
    NamespaceService,
    OperationService,
    AuditService,
    ...(workload ? [WorkloadService] : []),
    WebhookService,
    Health,
  ]);
  const webhookService = createWebhookService({
    store: deps.audit,
    subscriptions: webhooks,
    disabled: () => webhookSender.disabled,
  });

  const keys = new KeyStore({
    staticKeys: deps.apiKeys,
    prefix: deps.namespacePrefix,
    ...(deps.apiKeysFile ? { file: deps.apiKeysFile } : {}),
    ...(deps.namedKeys ? { namedKeys: deps.namedKeys } : {}),
  });
  keys.watch(deps.logger, deps.apiKeysReloadDebounceMs);

  const interceptors = [
    observabilityInterceptor(deps.logger),
    auditDenialsInterceptor(deps.audit, deps.replica, deps.logger),
    apiKeyInterceptor(keys),
    namespacePrefixInterceptor(deps.namespacePrefix),
    scopeInterceptor(),
  ];
  const routes = (router: ConnectRouter) => {
    router.service(ReleaseService, release);
    router.service(NamespaceService, namespace);
    router.service(OperationService, operationService);
    router.service(AuditService, auditService);
    if (workload) router.service(WorkloadService, workload);
    router.service(WebhookService, webhookService);
    router.service(Health, health);
    router.service(ServerReflection, reflection);
  };
  // REST (/api/…) is transcoded onto the same service implementations through the same
  // interceptors; every other path that is not an RPC goes to the API docs (/openapi.json,
  // /docs), then the probes and the JSON 404.
  const docs = createDocsRoutes();
  const plain = createHttpRoutes(deps.monitor, deps.lifecycle, deps.metricsOnMainPort ?? false);
  const rest = createRestHandler({
    routes,
    interceptors,
    maxBodyBytes: deps.maxBodyBytes,
    logger: deps.logger,
    contextValues: contextValuesOf,
    fallback: (req, res) => docs(req, res) || plain(req, res),
  });
  const handler = createRpcHandler({
    routes,
    interceptors,
    body: bodyLimits(deps.maxBodyBytes),
    // Unknown JSON fields are a caller's mistake worth reporting, not something to ignore.
    // (REST bodies ignore them, as the old operator's pydantic models did: src/rest/body.ts.)
    jsonOptions: { ignoreUnknownFields: false },
    // A request message that cannot be decoded is the caller's INVALID_ARGUMENT.
    requestGate: reclassifyUndecodableRequests,
    fallback: rest,
    contextValues: contextValuesOf,
    logger: deps.logger,
  });
  return { routes, interceptors, handler, queue, engine, repair, keys, webhooks, webhookSender };
}
