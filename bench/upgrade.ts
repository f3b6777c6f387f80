// Upgrades through the service versus a hand-rolled helm wrapper, side by side in one run
// against the local testbed. The service's upgrade does more than the wrapper's: an
// idempotency check and an audit intent and outcome (SQLite), the release's Lease, the pull of
// the exact chart archive, the render guard, and helm impersonating the tenant's deployer.
// This prints what that costs. Loopback only; bounded by BENCH_UPGRADES.
//   npm run bench            (brings the testbed up, then runs this file)
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { createPaasClient } from "../clients/paas-client.ts";
import { startServer, testbedEnv, uniqueNamespace } from "../test/support/testbed.ts";

const run = promisify(execFile);
const tb = testbedEnv();
const UPGRADES = Number(process.env.BENCH_UPGRADES ?? 15);

function p(ms: number[], q: number): number {
  const s = [...ms].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

const fmt = (n: number) => n.toFixed(0);

const server = await startServer({ LOG_LEVEL: "info" });
const ns = uniqueNamespace("benchup");
const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
try {
  const paas = createPaasClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, protocol: "grpc" });
  await paas.namespaces.createNamespace({ name: ns, podSecurity: "baseline" });
  const chart = { chart: "podinfo", repoUrl: tb.CHART_REPO_URL, version: "6.13.0" };
  await paas.releases.installRelease({ namespace: ns, name: "svc", ...chart });
  await paas.releases.installRelease({ namespace: ns, name: "raw", ...chart });

  const helmEnv = { ...process.env, KUBECONFIG: tb.KUBECONFIG };
  // What a hand-rolled wrapper does: helm upgrade with the repository URL, as cluster admin.
  const rawUpgrade = (i: number) =>
    run(
      tb.HELM_BINARY,
      [
        "upgrade",
        "raw",
        "podinfo",
        "--repo",
        tb.CHART_REPO_URL,
        "--version",
        "6.13.0",
        "-n",
        ns,
        "--reuse-values",
        "--set",
        `podAnnotations.bench=n${i}`,
        "-o",
        "json",
      ],
      { env: helmEnv },
    );
  const serviceUpgrade = (i: number) =>
    paas.releases.upgradeRelease({ namespace: ns, name: "svc", values: { podAnnotations: { bench: `n${i}` } } });

  await serviceUpgrade(0);
  await rawUpgrade(0);
  const service: number[] = [];
  const raw: number[] = [];
  // Interleaved so that machine noise hits both alike.
  for (let i = 1; i <= UPGRADES; i++) {
    service.push(await timed(() => serviceUpgrade(i)));
    raw.push(await timed(() => rawUpgrade(i)));
  }
  console.log(`UpgradeRelease, podinfo from the HTTP chart repository, testbed cluster, ${UPGRADES} each, serial`);
  console.log(
    `  service (audit, Lease, pull, guard, impersonation): p50 ${fmt(p(service, 0.5))} ms  p95 ${fmt(p(service, 0.95))} ms`,
  );
  console.log(
    `  helm upgrade as cluster admin (wrapper)           : p50 ${fmt(p(raw, 0.5))} ms  p95 ${fmt(p(raw, 0.95))} ms`,
  );
  console.log(
    `  cost of the safety (service - wrapper, p50): ${fmt(p(service, 0.5) - p(raw, 0.5))} ms (${(p(service, 0.5) / p(raw, 0.5)).toFixed(2)}x)`,
  );
} finally {
  await kc
    .makeApiClient(k8s.CoreV1Api)
    .deleteNamespace({ name: ns })
    .catch(() => undefined);
  await server.stop();
}
