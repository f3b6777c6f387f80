import { setTimeout as sleep } from "node:timers/promises";
import * as k8s from "@kubernetes/client-node";
import { Code, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPaasClient, type PaasClient } from "../../clients/paas-client.ts";
import { AuditOutcome, AuditService, AuditStage, type AuditEvent } from "../../gen/paas/v1/audit_pb.js";
import { HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { ReleaseStatus } from "../../gen/paas/v1/release_pb.js";
import { LeaseManager, leaseRecord } from "../../src/kube/leases/leases.ts";
import { failure } from "../support/failure.ts";
import { startTcpProxy, writeKubeconfigVia, type TcpProxy } from "../support/tcp-proxy.ts";
import {
  startServer,
  TEST_LEASE_NAMESPACE,
  testbedEnv,
  uniqueNamespace,
  type ServerProcess,
} from "../support/testbed.ts";

// Fault injection: the Kubernetes API becomes unreachable (every connection reset, new
// ones refused) while an upgrade --wait holds its release's Lease. The operator reaches
// the API (and so does its helm) only through a loopback TCP proxy; the test itself talks
// to the real API server, so it sees what is really left in the cluster.

const tb = testbedEnv();
const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
const core = kc.makeApiClient(k8s.CoreV1Api);
const coordination = kc.makeApiClient(k8s.CoordinationV1Api);
const ns = uniqueNamespace("outage");
// The server's reconciler repairs pending releases in every namespace under its prefix:
// keep it to this file's namespaces, away from helm runs of other suites.
const PREFIX = "paas-ws-outage-";

const LEASE_SECONDS = 6;
const LEASE_MS = LEASE_SECONDS * 1000;
const SLOW = { podAnnotations: { "pod-ready.stage.kwok.x-k8s.io/delay": "60s" } };

let proxy: TcpProxy;
let server: ServerProcess;
let client: PaasClient;

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  everyMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** timed runs a call that must fail and returns its error and how long it took. */
async function timedFailure(p: Promise<unknown>): Promise<{ code: Code; message: string; ms: number }> {
  const t0 = Date.now();
  const err = await failure(p);
  return { code: err.code, message: err.rawMessage, ms: Date.now() - t0 };
}

async function readLease(release: string): Promise<k8s.V1Lease | undefined> {
  return coordination
    .readNamespacedLease({ name: LeaseManager.leaseName(ns, release), namespace: TEST_LEASE_NAMESPACE })
    .catch((err: { code?: number }) => {
      if (err.code === 404) return undefined;
      throw err;
    });
}

/** The release's storage Secrets from the real API server, newest revision last. */
async function storage(release: string): Promise<Array<[string, string]>> {
  const list = await core.listNamespacedSecret({ namespace: ns, labelSelector: `owner=helm,name=${release}` });
  return list.items
    .map((s) => [s.metadata?.labels?.version ?? "", s.metadata?.labels?.status ?? ""] as [string, string])
    .sort((a, b) => Number(a[0]) - Number(b[0]));
}

async function auditEvents(release: string): Promise<AuditEvent[]> {
  const res = await createClient(AuditService, client.transport).listAuditEvents({
    namespace: ns,
    release,
    pageSize: 1000,
  });
  return res.events;
}

function expectEveryOperationClosedOnce(events: AuditEvent[]): void {
  const outcomes = new Map<string, number>();
  for (const e of events)
    if (e.stage === AuditStage.OUTCOME) outcomes.set(e.operationId, (outcomes.get(e.operationId) ?? 0) + 1);
  for (const [id, n] of outcomes) expect(n, `outcomes of operation ${id}`).toBe(1);
  for (const intent of events.filter((e) => e.stage === AuditStage.INTENT)) {
    expect(outcomes.get(intent.operationId), `outcome of ${intent.method} ${intent.operationId}`).toBe(1);
  }
}

const apiServer = process.env.KUBE_APISERVER || kc.getCurrentCluster()!.server;

beforeAll(async () => {
  proxy = await startTcpProxy(apiServer);
  const kubeconfig = writeKubeconfigVia(tb.KUBECONFIG, proxy.address);
  server = await startServer({
    KUBECONFIG: kubeconfig,
    NAMESPACE_PREFIX: PREFIX,
    LEASE_DURATION: String(LEASE_SECONDS),
    HEARTBEAT_INTERVAL: "1",
    RECONCILE_INTERVAL: "2",
  });
  client = createPaasClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, protocol: "grpc" });
  await client.namespaces.createNamespace({ name: ns, podSecurity: "baseline" });
  for (const name of ["slow", "other"]) {
    const res = await client.releases.installRelease({
      namespace: ns,
      name,
      chart: "testbed/podinfo",
      version: "6.13.0",
    });
    expect(res.release?.status).toBe(ReleaseStatus.DEPLOYED);
  }
  // Everything the server did so far went through the proxy (TLS verified end to end).
  expect(proxy.accepted).toBeGreaterThan(0);
});

afterAll(async () => {
  proxy?.restore();
  if (server) expect(await server.stop()).toBe(0);
  await proxy?.close();
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
  for (const release of ["slow", "other"]) {
    await coordination
      .deleteNamespacedLease({ name: LeaseManager.leaseName(ns, release), namespace: TEST_LEASE_NAMESPACE })
      .catch(() => undefined);
  }
});

describe("Kubernetes API outage", () => {
  let cutAt = 0;
  let slowOperation = "";

  it("(a) fails a running upgrade --wait with UNAVAILABLE once its Lease cannot be renewed, and stops helm with SIGTERM", async () => {
    const upgrade = timedFailure(
      client.releases.upgradeRelease({ namespace: ns, name: "slow", values: SLOW, wait: true }),
    );
    await until("helm upgrade started", () => server.logs.some((l) => l.msg === "helm upgrade started"), 30_000, 50);
    // Helm has recorded revision 2 as pending-upgrade and is waiting for the pods.
    await until(
      "revision 2 pending-upgrade",
      async () => (await storage("slow")).at(-1)?.[1] === "pending-upgrade",
      30_000,
      100,
    );
    await sleep(500);
    const lease = await readLease("slow");
    expect(lease, "the upgrade holds the release's Lease").toBeDefined();
    const holder = leaseRecord(lease!).holder;
    slowOperation = holder.slice(holder.lastIndexOf("/") + 1);
    expect(slowOperation).not.toBe("");

    cutAt = Date.now();
    proxy.cut();
    const failed = await upgrade;
    const toUnavailable = Date.now() - cutAt;
    console.log(
      `api-outage (a): upgrade --wait failed ${toUnavailable} ms after the cut (LEASE_DURATION ${LEASE_SECONDS}s): ${Code[failed.code]}: ${failed.message}`,
    );
    expect(failed.code).toBe(Code.Unavailable);
    expect(failed.message).toMatch(/lease/i);
    expect(toUnavailable).toBeLessThanOrEqual(2 * LEASE_MS + 3000);

    // helm was stopped by the server (SIGTERM through the Lease's lost signal), not by itself.
    const lost = server.logs.findIndex((l) => l.msg === "lost the lease" && l.release === "slow");
    const stopped = server.logs.findIndex((l) => l.msg === "helm upgrade failed");
    expect(lost, "log line of the lost Lease").toBeGreaterThanOrEqual(0);
    expect(stopped, "log line of the stopped helm").toBeGreaterThan(lost);
    expect(server.logs[stopped]).toMatchObject({ aborted: true, timedOut: false });
  });

  it("(b) refuses a new mutation and reads with UNAVAILABLE, in bounded time, while the API is down", async () => {
    expect(proxy.isCut).toBe(true);
    const mutation = await timedFailure(
      client.releases.upgradeRelease({ namespace: ns, name: "other", values: { replicaCount: 2 } }),
    );
    console.log(
      `api-outage (b): new mutation refused after ${mutation.ms} ms: ${Code[mutation.code]}: ${mutation.message}`,
    );
    expect(mutation.code).toBe(Code.Unavailable);
    expect(mutation.ms).toBeLessThanOrEqual(LEASE_MS + 4000);

    const reads = {
      getRelease: await timedFailure(client.releases.getRelease({ namespace: ns, name: "other" })),
      getReleaseStatus: await timedFailure(client.releases.getReleaseStatus({ namespace: ns, name: "other" })),
      listReleases: await timedFailure(client.releases.listReleases({ namespace: ns })),
    };
    for (const [name, r] of Object.entries(reads)) {
      console.log(`api-outage (b): ${name} failed after ${r.ms} ms: ${Code[r.code]}: ${r.message}`);
      expect(r.code, name).toBe(Code.Unavailable);
      // Reads through the API client fail at once; ListReleases runs `helm list`, whose
      // client retries for about 10 s before it gives up.
      expect(r.ms, name).toBeLessThanOrEqual(name === "listReleases" ? 15_000 : 2000);
    }

    // The health service reports the dependency down (probes take the replica out of rotation).
    const health = await until(
      "NOT_SERVING",
      async () => {
        const h = await client.health.check({ service: "" });
        return h.status === HealthCheckResponse_ServingStatus.NOT_SERVING ? h : undefined;
      },
      10_000,
    );
    expect(health.status).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
    // Nothing changed in the cluster.
    expect(await storage("other")).toEqual([["1", "deployed"]]);
  });

  it("(c) after the API is back: reads work, no Lease is left, the release is repaired and upgrades succeed; the audit log is closed", async () => {
    const outage = Date.now() - cutAt;
    proxy.restore();
    const restoredAt = Date.now();
    await until(
      "reads to work again",
      () =>
        client.releases.getRelease({ namespace: ns, name: "other" }).then(
          () => true,
          () => false,
        ),
      10_000,
    );
    const readsBackMs = Date.now() - restoredAt;

    // The interrupted upgrade's Lease is deleted (or expires and is taken and deleted by the repair).
    await until(
      "the Lease of slow to be gone",
      async () => (await readLease("slow")) === undefined,
      2 * LEASE_MS + 2000,
    );
    const leaseGoneMs = Date.now() - restoredAt;
    // Helm could not record its own failure while the API was down: the reconciler repairs the pending revision.
    const repaired = await until(
      "slow to be repaired",
      async () => {
        const r = (await client.releases.getRelease({ namespace: ns, name: "slow" })).release;
        return r && r.status !== ReleaseStatus.PENDING_UPGRADE ? r : undefined;
      },
      2 * LEASE_MS + 5000,
    );
    const repairedMs = Date.now() - restoredAt;
    console.log(
      `api-outage (c): outage ${outage} ms; reads back ${readsBackMs} ms, Lease gone ${leaseGoneMs} ms, slow ${ReleaseStatus[repaired.status]} ${repairedMs} ms after restore`,
    );
    expect(repaired).toMatchObject({ revision: 2, status: ReleaseStatus.FAILED });
    expect(await storage("slow")).toEqual([
      ["1", "deployed"],
      ["2", "failed"],
    ]);

    const next = await client.releases.upgradeRelease({ namespace: ns, name: "slow", values: {}, resetValues: true });
    expect(next.release).toMatchObject({ revision: 3, status: ReleaseStatus.DEPLOYED });
    const other = await client.releases.upgradeRelease({ namespace: ns, name: "other", values: { replicaCount: 2 } });
    expect(other.release).toMatchObject({ revision: 2, status: ReleaseStatus.DEPLOYED });
    expect(await storage("slow")).toEqual([
      ["1", "superseded"],
      ["2", "failed"],
      ["3", "deployed"],
    ]);
    expect(await storage("other")).toEqual([
      ["1", "superseded"],
      ["2", "deployed"],
    ]);
    for (const release of ["slow", "other"]) {
      await until(`the Lease of ${release} to be gone`, async () => (await readLease(release)) === undefined, 5000);
    }

    // Audit: the interrupted upgrade has its intent and a failed (unavailable) outcome; the
    // refused one too; the repair and the later upgrades are recorded; each closed once.
    const slow = await auditEvents("slow");
    const interrupted = slow.filter((e) => e.operationId === slowOperation);
    expect(interrupted.map((e) => [e.stage, e.outcome]).sort()).toEqual([
      [AuditStage.INTENT, AuditOutcome.UNSPECIFIED],
      [AuditStage.OUTCOME, AuditOutcome.FAILED],
    ]);
    expect(interrupted.find((e) => e.stage === AuditStage.OUTCOME)).toMatchObject({
      errorCode: "unavailable",
      revisionBefore: 1,
    });
    const outcomes = slow.filter((e) => e.stage === AuditStage.OUTCOME);
    expect(outcomes.filter((e) => e.outcome === AuditOutcome.RECOVERED)).toHaveLength(1);
    expect(outcomes.filter((e) => e.outcome === AuditOutcome.RECOVERED)[0]).toMatchObject({ revisionBefore: 2 });
    expect(outcomes.filter((e) => e.method === "paas.v1.ReleaseService/UpgradeRelease").map((e) => e.outcome)).toEqual([
      AuditOutcome.SUCCEEDED,
      AuditOutcome.FAILED,
    ]);
    expectEveryOperationClosedOnce(slow);

    const others = await auditEvents("other");
    const otherOutcomes = others.filter(
      (e) => e.stage === AuditStage.OUTCOME && e.method === "paas.v1.ReleaseService/UpgradeRelease",
    );
    expect(otherOutcomes.map((e) => [e.outcome, e.errorCode])).toEqual([
      [AuditOutcome.SUCCEEDED, ""],
      [AuditOutcome.FAILED, "unavailable"],
    ]);
    expectEveryOperationClosedOnce(others);
  });
});
