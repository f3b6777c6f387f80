import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPaasClient, type PaasClient } from "../../clients/paas-client.ts";
import { startServer, testbedEnv, uniqueNamespace, type ServerProcess } from "../support/testbed.ts";

// Prometheus metrics, end to end: the real server (METRICS_PORT set) serves real traffic over
// gRPC, Connect and REST against the testbed; a real Prometheus (Debian's package, installed by
// scripts/ensure-prometheus.sh when missing) scrapes it on 127.0.0.1 and answers PromQL over its
// HTTP API; `promtool check metrics` lints the exposition. A second server without METRICS_PORT
// serves /metrics on its main port, without a key.

const tb = testbedEnv();
const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
const core = kc.makeApiClient(k8s.CoreV1Api);

async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, "close");
  return port;
}

type Sample = { metric: Record<string, string>; value: [number, string] };

describe("Prometheus metrics scraped by a real Prometheus", () => {
  let server: ServerProcess;
  let plain: ServerProcess;
  let grpc: PaasClient;
  let connect: PaasClient;
  let prometheus: ChildProcess | undefined;
  let promUrl = "";
  let metricsPort = 0;
  let bin = "";
  const ns = uniqueNamespace("metrics");

  /** query runs an instant PromQL query and returns its vector. */
  async function query(q: string): Promise<Sample[]> {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`);
    const body = (await res.json()) as { status: string; data: { resultType: string; result: Sample[] } };
    expect(body.status).toBe("success");
    return body.data.result;
  }
  /** value polls a query (Prometheus scrapes every second) until `ok` holds for its first sample. */
  async function until(q: string, ok: (v: number) => boolean, timeoutMs = 30_000): Promise<number> {
    const end = Date.now() + timeoutMs;
    let last: Sample[] = [];
    while (Date.now() < end) {
      last = await query(q);
      if (last[0] && ok(Number(last[0].value[1]))) return Number(last[0].value[1]);
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`PromQL ${q}: no sample satisfied the check in ${timeoutMs}ms; last: ${JSON.stringify(last)}`);
  }

  beforeAll(async () => {
    bin = execFileSync("bash", ["scripts/ensure-prometheus.sh"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    }).trim();
    metricsPort = await freePort();
    server = await startServer({ METRICS_PORT: String(metricsPort) });
    plain = await startServer();
    grpc = createPaasClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, protocol: "grpc" });
    connect = createPaasClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, protocol: "connect" });

    const dir = mkdtempSync(join(tmpdir(), "paas-prometheus-"));
    writeFileSync(
      join(dir, "prometheus.yml"),
      [
        "global:",
        "  scrape_interval: 1s",
        "  evaluation_interval: 1s",
        "scrape_configs:",
        "  - job_name: paas",
        "    static_configs:",
        `      - targets: ["127.0.0.1:${metricsPort}"]`,
        "",
      ].join("\n"),
    );
    const promPort = await freePort();
    promUrl = `http://127.0.0.1:${promPort}`;
    prometheus = spawn(
      join(bin, "prometheus"),
      [
        `--config.file=${join(dir, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
        "--log.level=warn",
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    const end = Date.now() + 30_000;
    for (;;) {
      const ready = await fetch(`${promUrl}/-/ready`).then(
        (r) => r.ok,
        () => false,
      );
      if (ready) break;
      if (Date.now() > end) throw new Error("prometheus did not become ready in 30s");
      await new Promise((r) => setTimeout(r, 300));
    }
  }, 120_000);

  afterAll(async () => {
    if (prometheus && prometheus.exitCode === null) {
      prometheus.kill("SIGTERM");
      await once(prometheus, "exit");
    }
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
    expect(await server.stop()).toBe(0);
    expect(await plain.stop()).toBe(0);
  });

  it("counts RPCs of every protocol, helm runs, operations and waits, and Prometheus answers PromQL about them", async () => {
    expect(await until(`up{job="paas"}`, (v) => v === 1)).toBe(1);

    // Traffic: gRPC, Connect, REST (transcoded onto GetRelease), errors, a stream, an idempotent replay.
    await grpc.health.check({});
    await grpc.namespaces.createNamespace({ name: ns, podSecurity: "baseline" });
    const missing = { namespace: ns, name: "nope" };
    const notFound = await connect.releases.getRelease(missing).catch((e: unknown) => ConnectError.from(e));
    expect(notFound).toBeInstanceOf(ConnectError);
    expect((notFound as ConnectError).code).toBe(Code.NotFound);
    const rest = await fetch(`${server.baseUrl}/api/releases/${ns}/nope`, { headers: { "x-api-key": server.apiKey } });
    expect(rest.status).toBe(404);
    const unauth = createPaasClient({ baseUrl: server.baseUrl, apiKey: "wrong-key-0123456789", protocol: "grpc" });
    const denied = await unauth.releases.listReleases({ namespace: ns }).catch((e: unknown) => ConnectError.from(e));
    expect((denied as ConnectError).code).toBe(Code.Unauthenticated);
    const install = { namespace: ns, name: "web", chart: "testbed/podinfo", version: "6.13.0", idempotencyKey: "m1" };
    const first = await grpc.releases.installRelease(install);
    const again = await grpc.releases.installRelease(install);
    expect(again.release?.revision).toBe(first.release?.revision);
    // A watch the client cancels after its first message.
    const abort = new AbortController();
    const stream = grpc.releases.watchReleaseStatus({ namespace: ns, name: "web" }, { signal: abort.signal });
    const seen = await (async () => {
      try {
        for await (const _ of stream) abort.abort();
      } catch (err) {
        return ConnectError.from(err).code;
      }
      return undefined;
    })();
    expect(seen).toBe(Code.Canceled);

    const rpc = (method: string, code: string) =>
      `sum(grpc_server_handled_total{grpc_service="paas.v1.ReleaseService",grpc_method="${method}",grpc_code="${code}"})`;
    // Connect + REST: two NotFound answers of GetRelease.
    expect(await until(rpc("GetRelease", "NotFound"), (v) => v >= 2)).toBeGreaterThanOrEqual(2);
    expect(await until(rpc("ListReleases", "Unauthenticated"), (v) => v >= 1)).toBe(1);
    expect(await until(rpc("InstallRelease", "OK"), (v) => v >= 2)).toBe(2);
    expect(
      await until(`sum(grpc_server_started_total{grpc_type="unary",grpc_method="InstallRelease"})`, (v) => v >= 2),
    ).toBe(2);
    expect(
      await until(`sum(grpc_server_handled_total{grpc_service="grpc.health.v1.Health",grpc_code="OK"})`, (v) => v >= 1),
    ).toBeGreaterThanOrEqual(1);
    // The stream: handled once ended (Canceled or OK), not in the latency histogram, no longer open.
    expect(
      await until(
        `sum(grpc_server_handled_total{grpc_type="server_stream",grpc_method="WatchReleaseStatus"})`,
        (v) => v >= 1,
      ),
    ).toBe(1);
    expect(
      await until(`sum(grpc_server_msg_sent_total{grpc_method="WatchReleaseStatus"})`, (v) => v >= 1),
    ).toBeGreaterThanOrEqual(1);
    expect(await until(`sum(grpc_server_active_streams{grpc_method="WatchReleaseStatus"})`, (v) => v === 0)).toBe(0);
    expect(await query(`grpc_server_handling_seconds_count{grpc_type="server_stream"}`)).toEqual([]);
    expect(await until(`sum(grpc_server_handling_seconds_count{grpc_method="InstallRelease"})`, (v) => v >= 2)).toBe(2);
    // A latency quantile Prometheus computes from the buckets: installs take more than 0 s and
    // less than the largest bucket.
    const p50 = await until(
      `histogram_quantile(0.5, sum by (le) (grpc_server_handling_seconds_bucket{grpc_method="InstallRelease"}))`,
      (v) => v > 0,
    );
    expect(p50).toBeLessThan(300);

    // helm: install ran once (the replay ran nothing), pull before it, nothing left running.
    expect(await until(`sum(paas_helm_runs_total{verb="install",outcome="success"})`, (v) => v >= 1)).toBe(1);
    expect(await until(`sum(paas_helm_run_duration_seconds_count{verb="install"})`, (v) => v >= 1)).toBe(1);
    expect(await until(`sum(paas_helm_runs_total{verb="pull",outcome="success"})`, (v) => v >= 1)).toBe(1);
    expect(await until(`sum(paas_helm_runs_running)`, (v) => v === 0)).toBe(0);
    // Operations: a namespace creation and one install, each succeeded; one replay.
    expect(await until(`paas_operations_total{kind="install",state="succeeded"}`, (v) => v >= 1)).toBe(1);
    expect(
      await until(`paas_idempotent_replays_total{method="paas.v1.ReleaseService/InstallRelease"}`, (v) => v >= 1),
    ).toBe(1);
    expect(await until(`sum(paas_queue_wait_seconds_count{queue="helm",outcome="started"})`, (v) => v >= 1)).toBe(1);
    expect(await until(`sum(paas_lease_wait_seconds_count{outcome="acquired"})`, (v) => v >= 2)).toBeGreaterThan(1);
    expect(await until(`paas_releases_repaired_total`, (v) => v === 0)).toBe(0);
    expect(
      await until(`sum(paas_audit_store_write_seconds_count{store="sqlite",op="finishOperation"})`, (v) => v >= 2),
    ).toBeGreaterThanOrEqual(2);
    // No write failed: the labelled counter has no series at all.
    expect(await query(`paas_audit_store_write_failures_total`)).toEqual([]);
    expect(await until(`paas_kube_watches_active`, (v) => v >= 0)).toBeGreaterThanOrEqual(0);

    // Process defaults and the info metric.
    expect(await until(`process_cpu_seconds_total{job="paas"}`, (v) => v > 0)).toBeGreaterThan(0);
    expect(await until(`nodejs_eventloop_lag_seconds{job="paas"}`, (v) => v >= 0)).toBeGreaterThanOrEqual(0);
    const info = await query(`paas_operator_info`);
    expect(info).toHaveLength(1);
    expect(info[0]!.metric).toMatchObject({ version: "0.1.0", node_version: process.version });
    expect(info[0]!.metric.helm_version).toMatch(/^v4\./);

    // Bounded cardinality: no series of ours carries a namespace, release or key.
    expect(await query(`{__name__=~"grpc_.+|paas_.+", namespace!=""}`)).toEqual([]);
    expect(await query(`{__name__=~"grpc_.+|paas_.+", release!=""}`)).toEqual([]);
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(text).not.toContain(ns);
    expect(text).not.toContain(server.apiKey);
  }, 240_000);

  it("`promtool check metrics` finds nothing to complain about", async () => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain("# TYPE grpc_server_handling_seconds histogram");
    const out = execFileSync(join(bin, "promtool"), ["check", "metrics"], { input: text, encoding: "utf8" });
    expect(out).toBe("");
  });

  it("METRICS_PORT serves only /metrics; the main port then has none; without it the main port serves them without a key", async () => {
    expect((await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { method: "POST" })).status).toBe(405);
    expect((await fetch(`${server.baseUrl}/metrics`)).status).toBe(404);
    const res = await fetch(`${plain.baseUrl}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain("# TYPE grpc_server_started_total counter");
    expect(text).toMatch(/^paas_operator_info\{version="0\.1\.0",helm_version="v4\.[^"]+",node_version="v24\./m);
    expect((await fetch(`${plain.baseUrl}/metrics`, { method: "DELETE" })).status).toBe(405);
  });
});
