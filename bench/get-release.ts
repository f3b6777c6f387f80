// Reads of a release through the service versus a hand-rolled helm wrapper, side by side in
// one run against the local testbed. Prints latency percentiles, throughput and the ratio.
//   npm run bench            (brings the testbed up, then runs this file)
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { createPaasClient } from "../clients/paas-client.ts";
import { startServer, testbedEnv, uniqueNamespace } from "../test/support/testbed.ts";

const run = promisify(execFile);
const tb = testbedEnv();
const SERIAL = Number(process.env.BENCH_SERIAL ?? 200);
const HELM_SERIAL = Number(process.env.BENCH_HELM_SERIAL ?? 30);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const PARALLEL_TOTAL = Number(process.env.BENCH_PARALLEL_TOTAL ?? 800);

function stats(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  const pick = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { n: s.length, p50: pick(0.5), p95: pick(0.95), max: s[s.length - 1]! };
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

async function parallel(total: number, concurrency: number, fn: () => Promise<unknown>): Promise<number> {
  let next = 0;
  const t = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < total) await fn();
    }),
  );
  return (total / (performance.now() - t)) * 1000;
}

const fmt = (n: number) => n.toFixed(1);

// Production log level: one JSON line per RPC is part of the cost being measured.
const server = await startServer({ LOG_LEVEL: "info" });
const ns = uniqueNamespace("bench");
const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
try {
  const paas = createPaasClient({
    baseUrl: server.baseUrl,
    apiKey: server.apiKey,
    protocol: "connect",
    httpVersion: "1.1",
  });
  const grpc = createPaasClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, protocol: "grpc" });
  await paas.namespaces.createNamespace({ name: ns });
  await paas.releases.installRelease({
    namespace: ns,
    name: "web",
    chart: "podinfo",
    repoUrl: tb.CHART_REPO_URL,
    version: "6.13.0",
    values: { replicaCount: 1 },
  });

  const helmEnv = { ...process.env, KUBECONFIG: tb.KUBECONFIG };
  // What a hand-rolled wrapper does for "get release": status (metadata, notes) and the values.
  const helmGet = () =>
    Promise.all([
      run(tb.HELM_BINARY, ["status", "web", "-n", ns, "-o", "json"], { env: helmEnv }),
      run(tb.HELM_BINARY, ["get", "values", "web", "-n", ns, "-o", "json"], { env: helmEnv }),
    ]);
  const serviceGet = () => paas.releases.getRelease({ namespace: ns, name: "web" });
  const grpcGet = () => grpc.releases.getRelease({ namespace: ns, name: "web" });

  // Warm up both paths (connections, helm's private home, V8).
  for (let i = 0; i < 10; i++) await serviceGet();
  for (let i = 0; i < 3; i++) await helmGet();

  const service: number[] = [];
  const helm: number[] = [];
  // Interleave the two so that machine noise hits both alike.
  for (let i = 0; i < SERIAL; i++) {
    service.push(await timed(serviceGet));
    if (i < HELM_SERIAL) helm.push(await timed(helmGet));
  }
  const grpcSerial: number[] = [];
  for (let i = 0; i < SERIAL; i++) grpcSerial.push(await timed(grpcGet));

  const sJson = stats(service);
  const sGrpc = stats(grpcSerial);
  const sHelm = stats(helm);
  const tService = await parallel(PARALLEL_TOTAL, CONCURRENCY, grpcGet);
  const tHelm = await parallel(Math.max(CONCURRENCY * 4, 32), CONCURRENCY, helmGet);

  console.log(`GetRelease, one release (podinfo), testbed cluster, ${CONCURRENCY}-way concurrency for throughput`);
  console.log(
    `  service Connect JSON/HTTP1.1 serial : p50 ${fmt(sJson.p50)} ms  p95 ${fmt(sJson.p95)} ms  (n=${sJson.n})`,
  );
  console.log(
    `  service gRPC/h2c serial             : p50 ${fmt(sGrpc.p50)} ms  p95 ${fmt(sGrpc.p95)} ms  (n=${sGrpc.n})`,
  );
  console.log(
    `  helm status + get values serial     : p50 ${fmt(sHelm.p50)} ms  p95 ${fmt(sHelm.p95)} ms  (n=${sHelm.n})`,
  );
  console.log(`  throughput: service ${fmt(tService)} req/s, helm wrapper ${fmt(tHelm)} req/s`);
  console.log(
    `  ratio (helm wrapper / service): p50 latency ${fmt(sHelm.p50 / sJson.p50)}x, throughput ${fmt(tService / tHelm)}x`,
  );
} finally {
  await kc
    .makeApiClient(k8s.CoreV1Api)
    .deleteNamespace({ name: ns })
    .catch(() => undefined);
  await server.stop();
}
