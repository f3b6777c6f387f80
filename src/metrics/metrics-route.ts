import { registry } from "./metrics.ts";

/** The parts of a Node HTTP/1 or HTTP/2 request and response this route uses. */
interface Req {
  url?: string | undefined;
  method?: string | undefined;
}
interface Res {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  end(chunk: string): unknown;
}

/**
 * serveMetrics answers GET/HEAD /metrics with the registry in Prometheus' text format (no key:
 * a scraper sends none) and returns true; any other request is left alone (false).
 */
export function serveMetrics(req: Req, res: Res): boolean {
  const path = (req.url ?? "/").split("?")[0];
  if (path !== "/metrics") return false;
  if (req.method !== "GET" && req.method !== "HEAD") {
    const text = JSON.stringify({
      detail: `Method ${req.method} not allowed on /metrics; allowed: GET, HEAD`,
      error_type: "method_not_allowed",
    });
    res.statusCode = 405;
    res.setHeader("allow", "GET, HEAD");
    res.setHeader("content-type", "application/json");
    res.end(text);
    return true;
  }
  registry.metrics().then(
    (text) => {
      res.statusCode = 200;
      res.setHeader("content-type", registry.contentType);
      res.setHeader("cache-control", "no-store");
      res.end(req.method === "HEAD" ? "" : text);
    },
    () => {
      res.statusCode = 500;
      res.setHeader("content-type", "text/plain");
      res.end("metrics collection failed\n");
    },
  );
  return true;
}

/** metricsOnly is the handler of METRICS_PORT: /metrics, and a JSON 404 for anything else. */
export function metricsOnly(req: Req, res: Res): void {
  if (serveMetrics(req, res)) return;
  const text = JSON.stringify({ detail: "Not found: only /metrics is served on this port", error_type: "not_found" });
  res.statusCode = 404;
  res.setHeader("content-type", "application/json");
  res.end(text);
}
