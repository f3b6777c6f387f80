import type { connectNodeAdapter } from "@connectrpc/connect-node";
import type { HealthMonitor } from "../health/health-monitor.ts";
import type { Lifecycle } from "../operations/lifecycle.ts";
import { serveMetrics } from "../metrics/metrics-route.ts";

type NodeHandler = ReturnType<typeof connectNodeAdapter>;
type Req = Parameters<NodeHandler>[0];
type Res = Parameters<NodeHandler>[1];

/** sendJson writes a JSON response with the given status. */
export function sendJson(res: Res, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader("content-type", "application/json");
  res.setHeader("content-length", Buffer.byteLength(text));
  res.setHeader("cache-control", "no-store");
  res.end(text);
}

const PLAIN_PATHS = new Set(["/health", "/healthz", "/readyz", "/health/live", "/health/ready"]);

/**
 * createHttpRoutes serves the plain HTTP endpoints that need no key: GET /health (the old
 * operator's JSON), /healthz (liveness: the process answers) and /readyz (readiness:
 * dependencies reachable and not draining). Another method on those paths is a JSON 405 with
 * `Allow`; anything else is a JSON 404 ({detail, error_type}, as the REST API's errors).
 * With `metrics` (METRICS_PORT not set), GET /metrics serves the Prometheus metrics here too.
 */
export function createHttpRoutes(monitor: HealthMonitor, lifecycle: Lifecycle, metrics = false) {
  return (req: Req, res: Res): void => {
    if (metrics && serveMetrics(req, res)) return;
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const get = req.method === "GET" || req.method === "HEAD";
    if (!get && PLAIN_PATHS.has(path)) {
      res.setHeader("allow", "GET, HEAD");
      sendJson(res, 405, {
        detail: `Method ${req.method} not allowed on ${path}; allowed: GET, HEAD`,
        error_type: "method_not_allowed",
      });
      return;
    }
    if (path === "/health" && get) {
      const h = monitor.current();
      sendJson(res, 200, {
        status: h.serving ? "healthy" : "degraded",
        timestamp: new Date().toISOString(),
        helm_version: h.helmVersion,
        ...(h.serving ? {} : { reasons: reasons(h.helmError, h.kubeError, lifecycle.draining) }),
      });
      return;
    }
    // /health/live and /health/ready: the ops API's names of the same probes.
    if ((path === "/healthz" || path === "/health/live") && get) {
      sendJson(res, 200, { status: "ok" });
      return;
    }
    if ((path === "/readyz" || path === "/health/ready") && get) {
      const h = monitor.current();
      sendJson(res, h.serving ? 200 : 503, {
        status: h.serving ? "ready" : "not ready",
        ...(h.serving ? {} : { reasons: reasons(h.helmError, h.kubeError, lifecycle.draining) }),
      });
      return;
    }
    sendJson(res, 404, { detail: `Not found: ${req.method} ${path.slice(0, 200)}`, error_type: "not_found" });
  };
}

function reasons(helmError: string | undefined, kubeError: string | undefined, draining: boolean): string[] {
  const out: string[] = [];
  if (draining) out.push("shutting down");
  if (helmError) out.push("helm unavailable");
  if (kubeError) out.push("kubernetes API unreachable");
  return out;
}
