// The operation engine, measured against the real testbed, side by side in one run:
//  1. its cost per synchronous mutation: UpgradeRelease through this checkout's server (every
//     mutation a durable operation with its steps recorded) against the same call on the
//     server of the last commit before the engine (BENCH_BASELINE_REV), interleaved;
//  2. draining BENCH_ASYNC_OPS async upgrades queued at once over BENCH_ASYNC_RELEASES
//     releases, with HELM_CONCURRENCY=4: the drain time, and the most helm runs seen at once
//     (from the server's log of helm starts and ends), which must not pass the bound.
// Loopback only; bounded by the counts.
//   npm run bench            (brings the testbed up, then runs every bench file)
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { createPaasClient, OperationState } from "../clients/paas-client.ts";
import { startServer, testbedEnv, uniqueNamespace, type ServerProcess } from "../test/support/testbed.ts";

const tb = testbedEnv();
const UPGRADES = Number(process.env.BENCH_UPGRADES ?? 15);
const ASYNC_OPS = Number(process.env.BENCH_ASYNC_OPS ?? 200);
const ASYNC_RELEASES = Number(process.env.BENCH_ASYNC_RELEASES ?? 50);
const CONCURRENCY = 4;
const BASELINE_REV = process.env.BENCH_BASELINE_REV ?? "15e93b5";

const p = (ms: number[], q: number) =>
  [...ms].sort((a, b) => a - b)[Math.min(ms.length - 1, Math.floor(q * ms.length))]!;
const fmt = (n: number) => n.toFixed(0);
async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
const core = kc.makeApiClient(k8s.CoreV1Api);
const chart = { chart: "podinfo", repoUrl: tb.CHART_REPO_URL, version: "6.13.0" };

/** baselineCheckout makes a detached work tree of the baseline commit, sharing node_modules. */
function baselineCheckout(): string {
  const dir = mkdtempSync(join(tmpdir(), "paas-bench-baseline-"));
  execFileSync("git", ["worktree", "add", "--detach", "--force", dir, BASELINE_REV], { stdio: "ignore" });
  if (!existsSync(join(dir, "node_modules")))
    symlinkSync(join(process.cwd(), "node_modules"), join(dir, "node_modules"));
  return dir;
}

async function engineCost(): Promise<void> {
  const dir = baselineCheckout();
  const servers: ServerProcess[] = [];
  const ns = uniqueNamespace("benchops");
  try {
    const current = await startServer({ LOG_LEVEL: "info" });
    servers.push(current);
    const baseline = await startServer({ LOG_LEVEL: "info" }, dir);
    servers.push(baseline);
    const now = createPaasClient({ baseUrl: current.baseUrl, apiKey: current.apiKey, protocol: "grpc" });
    const before = createPaasClient({ baseUrl: baseline.baseUrl, apiKey: baseline.apiKey, protocol: "grpc" });
    await now.namespaces.createNamespace({ name: ns, podSecurity: "baseline" });
    await now.releases.installRelease({ namespace: ns, name: "engine", ...chart });
    await before.releases.installRelease({ namespace: ns, name: "before", ...chart });
    const up = (c: typeof now, name: string, i: number) =>
      c.releases.upgradeRelease({ namespace: ns, name, values: { podAnnotations: { bench: `n${i}` } } });
    await up(now, "engine", 0);
    await up(before, "before", 0);
    const engine: number[] = [];
    const old: number[] = [];
    for (let i = 1; i <= UPGRADES; i++) {
      engine.push(await timed(() => up(now, "engine", i)));
      old.push(await timed(() => up(before, "before", i)));
    }
    const steps = (
      await now.operations.listOperations({ namespace: ns, release: "engine", pageSize: 1 })
    ).operations[0]?.steps
      .map((s) => s.name)
      .join(", ");
    console.log(`Synchronous UpgradeRelease, podinfo, ${UPGRADES} each, interleaved`);
    console.log(`  operation engine (steps: ${steps})`);
    console.log(`    p50 ${fmt(p(engine, 0.5))} ms  p95 ${fmt(p(engine, 0.95))} ms`);
    console.log(`  before the engine (${BASELINE_REV}): p50 ${fmt(p(old, 0.5))} ms  p95 ${fmt(p(old, 0.95))} ms`);
    console.log(
      `  added per mutation (p50): ${fmt(p(engine, 0.5) - p(old, 0.5))} ms (${(p(engine, 0.5) / p(old, 0.5)).toFixed(2)}x)`,
    );
  } finally {
    for (const s of servers) await s.stop().catch(() => undefined);
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
    execFileSync("git", ["worktree", "remove", "--force", dir], { stdio: "ignore" });
    rmSync(dir, { recursive: true, force: true });
  }
}

/** maxOverlap is the most helm writes running at once, from the server's "started" and end log lines. */
function maxOverlap(logs: Array<Record<string, unknown>>): number {
  // pino writes ISO times here (src/log.ts).
  const at = (l: Record<string, unknown>) => (typeof l.time === "number" ? l.time : Date.parse(String(l.time)));
  const events: Array<[number, number]> = [];
  for (const l of logs) {
    if (l.msg === "helm upgrade started") events.push([at(l), +1]);
    else if ((l.msg === "helm upgrade" || l.msg === "helm upgrade failed") && typeof l.durationMs === "number")
      events.push([at(l), -1]);
  }
  if (events.length === 0 || events.some(([t]) => Number.isNaN(t)))
    throw new Error("no helm runs with readable times in the log");
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let max = 0;
  for (const [, d] of events) max = Math.max(max, (now += d));
  return max;
}

async function asyncDrain(): Promise<void> {
  // Five releases a namespace: a tenant namespace's quota holds 100 Secrets (Helm keeps one per
  // revision); its CPU and memory limits are raised for the pods.
  const spaces = Array.from({ length: Math.ceil(ASYNC_RELEASES / 5) }, () => uniqueNamespace("benchq"));
  const server = await startServer({ LOG_LEVEL: "info", HELM_CONCURRENCY: String(CONCURRENCY) });
  try {
    const c = createPaasClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, protocol: "grpc" });
    for (const name of spaces) {
      await c.namespaces.createNamespace({ name, podSecurity: "baseline", cpuLimit: "50", memoryLimit: "100Gi" });
    }
    const targets = Array.from({ length: ASYNC_RELEASES }, (_, i) => ({
      namespace: spaces[i % spaces.length]!,
      name: `q${i}`,
    }));
    // Installed async too, then waited for: the drain below starts from deployed releases.
    const installs = await Promise.all(targets.map((t) => c.releases.installRelease({ ...t, ...chart, async: true })));
    for (const i of installs)
      await c.operations.waitOperation({ id: i.operationId, timeout: { seconds: 600n, nanos: 0 } });
    const startedAt = performance.now();
    const accepted: number[] = [];
    const ids: string[] = [];
    for (let i = 0; i < ASYNC_OPS; i++) {
      const t = performance.now();
      const target = targets[i % targets.length]!;
      const res = await c.releases.upgradeRelease({
        ...target,
        values: { podAnnotations: { bench: `n${i}` } },
        async: true,
      });
      accepted.push(performance.now() - t);
      ids.push(res.operationId);
    }
    const queuedIn = performance.now() - startedAt;
    const states = new Map<OperationState, number>();
    const errors = new Map<string, number>();
    for (const id of ids) {
      const { operation } = await c.operations.waitOperation({ id, timeout: { seconds: 600n, nanos: 0 } });
      states.set(operation!.state, (states.get(operation!.state) ?? 0) + 1);
      const e = operation?.error ? `${operation.error.code}: ${operation.error.message.slice(0, 120)}` : "";
      if (e) errors.set(e, (errors.get(e) ?? 0) + 1);
    }
    const drained = performance.now() - startedAt;
    const ok = states.get(OperationState.SUCCEEDED) ?? 0;
    console.log(
      `${ASYNC_OPS} async UpgradeRelease over ${ASYNC_RELEASES} releases in ${spaces.length} namespaces, HELM_CONCURRENCY=${CONCURRENCY}`,
    );
    console.log(
      `  accepted (durably queued) p50 ${fmt(p(accepted, 0.5))} ms  p95 ${fmt(p(accepted, 0.95))} ms; all queued in ${fmt(queuedIn)} ms`,
    );
    console.log(
      `  drained in ${(drained / 1000).toFixed(1)} s (${((ASYNC_OPS / drained) * 1000).toFixed(2)} ops/s); succeeded ${ok}, other ${ASYNC_OPS - ok}`,
    );
    for (const [e, n] of errors) console.log(`  ${n} × ${e}`);
    console.log(`  most helm upgrades at once: ${maxOverlap(server.logs)} (bound ${CONCURRENCY})`);
  } finally {
    await server.stop();
    for (const name of spaces) await core.deleteNamespace({ name }).catch(() => undefined);
  }
}

if (process.env.BENCH_ONLY !== "drain") await engineCost();
if (process.env.BENCH_ONLY !== "engine") await asyncDrain();
