import { describe, expect, it } from "vitest";
import { enableProcessMetrics, grpcType, metrics, registry, setInfo } from "../../../src/metrics/metrics.ts";

describe("metrics", () => {
  it("maps Connect method kinds onto the gRPC ecosystem's grpc_type values", () => {
    expect(grpcType("unary")).toBe("unary");
    expect(grpcType("server_streaming")).toBe("server_stream");
    expect(grpcType("client_streaming")).toBe("client_stream");
    expect(grpcType("bidi_streaming")).toBe("bidi_stream");
  });

  it("keeps one info series, with the versions given", async () => {
    setInfo("1.2.3", "v4.0.1");
    setInfo("1.2.3", "");
    const text = await registry.getSingleMetricAsString("paas_operator_info");
    const series = text.split("\n").filter((l) => l.startsWith("paas_operator_info{"));
    expect(series).toEqual([
      `paas_operator_info{version="1.2.3",helm_version="unknown",node_version="${process.version}"} 1`,
    ]);
  });

  it("adds the process defaults once, without prom-client's gauges named like counters", async () => {
    enableProcessMetrics();
    enableProcessMetrics();
    const text = await registry.metrics();
    expect(text).toContain("# TYPE process_cpu_seconds_total counter");
    expect(text).toContain("# TYPE nodejs_active_handles gauge");
    expect(text).not.toContain("nodejs_active_handles_total");
    expect(text).not.toContain("nodejs_active_requests_total");
  });

  it("declares no label that could carry a namespace, release, caller or key", () => {
    const labels = Object.values(metrics).flatMap(
      (m) => ((m as unknown as { labelNames: string[] }).labelNames ?? []) as string[],
    );
    expect(labels.length).toBeGreaterThan(10);
    for (const bad of ["namespace", "release", "name", "caller", "key", "api_key", "operation"])
      expect(labels).not.toContain(bad);
  });
});
