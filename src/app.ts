import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { ReleaseService } from "../gen/paas/v1/release_pb.js";
import { NamespaceService } from "../gen/paas/v1/namespace_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../gen/grpc/reflection/v1/reflection_pb.js";
import type { HealthMonitor } from "./health-monitor.ts";
import type { HelmClient } from "./helm/types.ts";
import { createDocsRoutes } from "./docs/docs-routes.ts";
import { createHttpRoutes } from "./http-routes.ts";
import { apiKeyInterceptor, scopeInterceptor } from "./interceptors/api-key.ts";
import type { NamedKey } from "./auth/key-file.ts";
import { KeyStore } from "./auth/key-store.ts";
import { ChartCatalog } from "./catalog/catalog.ts";
import type { ValuesLimits } from "./validation.ts";
import { namespacePrefixInterceptor } from "./interceptors/namespace-prefix.ts";
import { observabilityInterceptor } from "./interceptors/observability.ts";
import type { KubeClient } from "./kube/types.ts";
import type { Lifecycle } from "./lifecycle.ts";
import { OperationQueue } from "./operation-queue.ts";
import { createHealthService } from "./services/health-service.ts";
import { createNamespaceService, NamespaceManager } from "./services/namespace-service.ts";
import { createReflectionService } from "./services/reflection-service.ts";
import { createReleaseService } from "./services/release-service.ts";
import { createRestHandler } from "./rest/handler.ts";
import { contextValuesOf } from "./transport-context.ts";

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
}

/**
 * App is the request path: Connect routes for every service, the old operator's REST API
 * transcoded onto the same routes and interceptors, plus the plain HTTP endpoints.
 */
export interface App {
  routes: (router: ConnectRouter) => void;
  /** interceptors, outermost first; the in-memory test transport uses the same list. */
  interceptors: ReturnType<typeof observabilityInterceptor>[];
  handler: ReturnType<typeof connectNodeAdapter>;
  queue: OperationQueue;
  /** The API keys; close() stops watching API_KEYS_FILE. */
  keys: KeyStore;
}

/** createApp wires services, interceptors and HTTP routes; it opens no port. */
export function createApp(deps: AppDeps): App {
  const queue = new OperationQueue(deps.helmConcurrency);
  const namespaces = new NamespaceManager(deps.kube);
  const release = createReleaseService({
    helm: deps.helm,
    kube: deps.kube,
    queue,
    lifecycle: deps.lifecycle,
    namespaces,
    catalog: deps.catalog ?? ChartCatalog.allowAll(deps.repositories),
    ...(deps.valuesLimits ? { valuesLimits: deps.valuesLimits } : {}),
    helmTimeoutSeconds: deps.helmTimeoutSeconds,
    maxHelmTimeoutSeconds: deps.maxHelmTimeoutSeconds,
  });
  const namespace = createNamespaceService(deps.kube, namespaces, deps.lifecycle, deps.namespacePrefix);
  const health = createHealthService(deps.monitor, deps.lifecycle.streamsSignal);
  const reflection = createReflectionService([ReleaseService, NamespaceService, Health]);

  const keys = new KeyStore({
    staticKeys: deps.apiKeys,
    prefix: deps.namespacePrefix,
    ...(deps.apiKeysFile ? { file: deps.apiKeysFile } : {}),
    ...(deps.namedKeys ? { namedKeys: deps.namedKeys } : {}),
  });
  keys.watch(deps.logger, deps.apiKeysReloadDebounceMs);

  const interceptors = [
    observabilityInterceptor(deps.logger),
    apiKeyInterceptor(keys),
    namespacePrefixInterceptor(deps.namespacePrefix),
    scopeInterceptor(),
  ];
  const routes = (router: ConnectRouter) => {
    router.service(ReleaseService, release);
    router.service(NamespaceService, namespace);
    router.service(Health, health);
    router.service(ServerReflection, reflection);
  };
  // REST (/api/…) is transcoded onto the same service implementations through the same
  // interceptors; every other path that is not an RPC goes to the API docs (/openapi.json,
  // /docs), then the probes and the JSON 404.
  const docs = createDocsRoutes();
  const plain = createHttpRoutes(deps.monitor, deps.lifecycle);
  const rest = createRestHandler({
    routes,
    interceptors,
    maxBodyBytes: deps.maxBodyBytes,
    logger: deps.logger,
    contextValues: contextValuesOf,
    fallback: (req, res) => docs(req, res) || plain(req, res),
  });
  const handler = connectNodeAdapter({
    routes,
    interceptors,
    readMaxBytes: deps.maxBodyBytes,
    // Unknown JSON fields are a caller's mistake worth reporting, not something to ignore.
    // (REST bodies ignore them, as the old operator's pydantic models did: src/rest/body.ts.)
    jsonOptions: { ignoreUnknownFields: false },
    fallback: rest,
    contextValues: contextValuesOf,
  });
  return { routes, interceptors, handler, queue, keys };
}
