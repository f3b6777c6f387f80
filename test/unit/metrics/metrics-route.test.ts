import { describe, expect, it } from "vitest";
import { metricsOnly, serveMetrics } from "../../../src/metrics/metrics-route.ts";
import { metrics } from "../../../src/metrics/metrics.ts";

/** answer runs a handler on a recorded response. */
async function answer(handle: (req: object, res: Res) => unknown, method: string, url: string) {
  const res = new Res();
  const handled = handle({ method, url }, res);
  await res.done;
  return { handled, ...res };
}

class Res {
  statusCode = 0;
  headers: Record<string, string> = {};
  body = "";
  private finish!: () => void;
  done = new Promise<void>((r) => (this.finish = r));
  setHeader(name: string, value: string) {
    this.headers[name] = value;
  }
  end(chunk: string) {
    this.body = chunk;
    this.finish();
  }
}

describe("/metrics", () => {
  it("serves the registry in the text format to GET, headers only to HEAD", async () => {
    metrics.releasesRepaired.inc(0);
    const get = await answer(serveMetrics, "GET", "/metrics?x=1");
    expect(get.handled).toBe(true);
    expect(get.statusCode).toBe(200);
    expect(get.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(get.body).toContain("# TYPE paas_releases_repaired_total counter");
    const head = await answer(serveMetrics, "HEAD", "/metrics");
    expect(head.statusCode).toBe(200);
    expect(head.body).toBe("");
  });

  it("refuses other methods with 405 and leaves other paths alone", async () => {
    const post = await answer(serveMetrics, "POST", "/metrics");
    expect(post.statusCode).toBe(405);
    expect(post.headers.allow).toBe("GET, HEAD");
    const res = new Res();
    expect(serveMetrics({ method: "GET", url: "/metricsx" }, res)).toBe(false);
    expect(res.statusCode).toBe(0);
  });

  it("the METRICS_PORT handler answers anything else with a JSON 404", async () => {
    const other = await answer(metricsOnly, "GET", "/healthz");
    expect(other.statusCode).toBe(404);
    expect(JSON.parse(other.body)).toMatchObject({ error_type: "not_found" });
  });
});
