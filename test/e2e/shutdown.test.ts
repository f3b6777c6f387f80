import http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import * as k8s from "@kubernetes/client-node";
import { Code } from "@connectrpc/connect";
import { afterAll, describe, expect, it } from "vitest";
import { createPaasClient } from "../../clients/paas-client.ts";
import { ReleaseStatus } from "../../gen/paas/v1/release_pb.js";
import { SqliteAuditStore } from "../../src/audit/sqlite-store.ts";
import type { AuditRecord } from "../../src/domain/audit.ts";
import { LeaseManager } from "../../src/kube/leases/leases.ts";
import { failure } from "../support/failure.ts";
import {
  startServer,
  TEST_LEASE_NAMESPACE,
  testbedEnv,
  uniqueNamespace,
  type ServerProcess,
} from "../support/testbed.ts";

const tb = testbedEnv();
const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
const core = kc.makeApiClient(k8s.CoreV1Api);
const coordination = kc.makeApiClient(k8s.CoordinationV1Api);
// The server's reconciler repairs pending releases in every namespace under its prefix:
// keep it to this file's namespaces, away from helm runs of other suites.
const PREFIX = "paas-ws-term-";
const namespaces: string[] = [];
const servers: ServerProcess[] = [];

afterAll(async () => {
  for (const s of servers) await s.crash().catch(() => undefined);
  for (const ns of namespaces) {
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
    for (const release of ["web", "late"]) {
      await coordination
        .deleteNamespacedLease({ name: LeaseManager.leaseName(ns, release), namespace: TEST_LEASE_NAMESPACE })
        .catch(() => undefined);
    }
  }
});

async function start(env: Record<string, string>) {
  const ns = uniqueNamespace("term");
  namespaces.push(ns);
  const server = await startServer({ NAMESPACE_PREFIX: PREFIX, ...env });
  servers.push(server);
  const client = createPaasClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, protocol: "grpc" });
  await client.namespaces.createNamespace({ name: ns, podSecurity: "baseline" });
  return { ns, server, client };
}

async function waitForLog(
  server: ServerProcess,
  match: (l: Record<string, unknown>) => boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!server.logs.some(match)) {
    if (Date.now() > deadline) throw new Error(`no log line "${what}" within ${timeoutMs} ms`);
    await sleep(50);
  }
}

async function statuses(ns: string, release: string): Promise<string[]> {
  const secrets = await core.listNamespacedSecret({ namespace: ns, labelSelector: `owner=helm,name=${release}` });
  return secrets.items
    .sort((a, b) => Number(a.metadata?.labels?.version) - Number(b.metadata?.labels?.version))
    .map((s) => s.metadata?.labels?.status ?? "");
}

async function leaseOf(ns: string, release: string): Promise<k8s.V1Lease | undefined> {
  return coordination
    .readNamespacedLease({ name: LeaseManager.leaseName(ns, release), namespace: TEST_LEASE_NAMESPACE })
    .catch((err: { code?: number }) => {
      if (err.code === 404) return undefined;
      throw err;
    });
}

/**
 * slowConnectCall opens a Connect (HTTP/1.1, JSON) call now, headers only; send() writes the
 * body later and resolves with the HTTP status and the parsed JSON answer.
 */
function slowConnectCall(server: ServerProcess, method: string) {
  const req = http.request(`${server.baseUrl}/${method}`, {
    method: "POST",
    agent: false,
    headers: { "content-type": "application/json", "connect-protocol-version": "1", "x-api-key": server.apiKey },
  });
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    req.once("response", resolve);
    req.once("error", reject);
  });
  req.flushHeaders();
  return {
    async send(body: object): Promise<{ status: number; body: Record<string, unknown> }> {
      req.end(JSON.stringify(body));
      const res = await response;
      let text = "";
      for await (const chunk of res) text += chunk;
      return { status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> };
    },
  };
}

/** The audit records of a namespace, read from the SQLite file once the server has exited. */
async function auditOf(path: string, ns: string): Promise<AuditRecord[]> {
  const store = new SqliteAuditStore({ path });
  try {
    return (await store.list({ namespace: ns, pageSize: 1000 })).records;
  } finally {
    await store.close();
  }
}

function expectClosedOnce(records: AuditRecord[]): void {
  for (const intent of records.filter((r) => r.stage === "intent")) {
    expect(
      records.filter((r) => r.operationId === intent.operationId && r.stage === "outcome"),
      `outcome of ${intent.method} ${intent.release}`,
    ).toHaveLength(1);
  }
  for (const outcome of records.filter((r) => r.stage === "outcome")) {
    expect(records.filter((r) => r.operationId === outcome.operationId && r.stage === "outcome")).toHaveLength(1);
  }
}

describe("SIGTERM during an install", () => {
  it("refuses new mutations, lets the install finish, never leaves it pending, releases the Lease, records it, and exits 0", async () => {
    const GRACE_S = 60;
    const { ns, server, client } = await start({ SHUTDOWN_GRACE: String(GRACE_S) });
    // Pods ready 8 s after creation: the install is still in helm's --wait when SIGTERM comes.
    const install = client.releases.installRelease({
      namespace: ns,
      name: "web",
      chart: "testbed/podinfo",
      version: "6.13.0",
      values: { podAnnotations: { "pod-ready.stage.kwok.x-k8s.io/delay": "8s" } },
      wait: true,
    });
    await waitForLog(server, (l) => l.msg === "helm install started", "helm install started");
    expect(server.logs.some((l) => l.msg === "helm install")).toBe(false);
    // A Connect call over HTTP/1.1 whose headers arrive before SIGTERM and whose body after:
    // its connection is busy, so draining keeps it, and the server itself must refuse it.
    const late = slowConnectCall(server, "paas.v1.ReleaseService/InstallRelease");
    await sleep(300);
    const termAt = Date.now();
    const exit = server.stop("SIGTERM");
    await waitForLog(server, (l) => String(l.msg).startsWith("shutting down"), "shutting down", 5000);

    // New mutations while the install runs are refused with UNAVAILABLE: by the server...
    const refusedByServer = await late.send({
      namespace: ns,
      name: "late",
      chart: "testbed/podinfo",
      version: "6.13.0",
    });
    expect(refusedByServer.status).toBe(503);
    expect(refusedByServer.body).toMatchObject({ code: "unavailable" });
    expect(String(refusedByServer.body.message)).toMatch(/shutting down/);
    // ...and, for clients that come back (GOAWAY sent, port closed), by the closed port.
    const refused = await failure(
      client.releases.installRelease({ namespace: ns, name: "late", chart: "testbed/podinfo", version: "6.13.0" }),
    );
    expect(refused.code).toBe(Code.Unavailable);
    const fresh = createPaasClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, protocol: "connect" });
    expect(
      (await failure(fresh.releases.upgradeRelease({ namespace: ns, name: "web", values: { replicaCount: 2 } }))).code,
    ).toBe(Code.Unavailable);
    expect(
      server.logs.some((l) => l.msg === "helm install"),
      "the install was still running when the mutations were refused",
    ).toBe(false);

    const res = await install;
    expect(res.release).toMatchObject({ revision: 1, status: ReleaseStatus.DEPLOYED });
    expect(await exit).toBe(0);
    const exitMs = Date.now() - termAt;
    console.log(`shutdown: exited 0 ${exitMs} ms after SIGTERM (grace ${GRACE_S}s)`);
    expect(exitMs).toBeLessThan(GRACE_S * 1000);
    expect(await statuses(ns, "web")).toEqual(["deployed"]);
    expect(await statuses(ns, "late")).toEqual([]);
    expect(server.logs.some((l) => l.msg === "stopped")).toBe(true);
    // The install finished after SIGTERM, and the server waited for it without stopping helm.
    const order = server.logs.map((l) => l.msg);
    expect(order.indexOf("helm install")).toBeGreaterThan(
      order.findIndex((m) => String(m).startsWith("shutting down")),
    );
    expect(order).not.toContain("grace period nearly over: sending SIGTERM to running helm processes");
    expect(await leaseOf(ns, "web")).toBeUndefined();
    expect(await leaseOf(ns, "late")).toBeUndefined();

    const records = await auditOf(server.auditPath, ns);
    const installs = records.filter((r) => r.method === "paas.v1.ReleaseService/InstallRelease" && r.release === "web");
    expect(installs.map((r) => [r.stage, r.outcome ?? ""]).sort()).toEqual([
      ["intent", ""],
      ["outcome", "succeeded"],
    ]);
    expect(installs.find((r) => r.stage === "outcome")).toMatchObject({
      revisionBefore: 0,
      revisionAfter: 1,
      errorCode: "",
    });
    // The refused mutations never got as far as an intent.
    expect(records.filter((r) => r.release === "late")).toEqual([]);
    expect(records.filter((r) => r.method === "paas.v1.ReleaseService/UpgradeRelease")).toEqual([]);
    expectClosedOnce(records);
  });

  it("when the grace period runs out, stops helm with SIGTERM, leaves the release failed (not pending), records it, and exits 0 in time", async () => {
    // SHUTDOWN_GRACE 20 s: helm gets SIGTERM 15 s before the end, i.e. 5 s after the server's.
    const GRACE_S = 20;
    const { ns, server, client } = await start({ SHUTDOWN_GRACE: String(GRACE_S) });
    const install = failure(
      client.releases.installRelease({
        namespace: ns,
        name: "web",
        chart: "testbed/podinfo",
        version: "6.13.0",
        values: { podAnnotations: { "testbed.paas.io/never-ready": "true" } },
        wait: true,
      }),
    );
    await waitForLog(server, (l) => l.msg === "helm install started", "helm install started");
    // helm writes its pending record a moment after it starts (after the chart pull): wait for
    // it rather than a fixed time, which a busy machine outlasts.
    for (let i = 0; i < 300 && (await statuses(ns, "web")).length === 0; i++) await sleep(100);
    expect(await statuses(ns, "web")).toEqual(["pending-install"]);
    const termAt = Date.now();
    const exit = server.stop("SIGTERM");

    const err = await install;
    expect(err.code).toBe(Code.Unavailable);
    expect(await exit).toBe(0);
    const exitMs = Date.now() - termAt;
    console.log(`shutdown: helm stopped, exited 0 ${exitMs} ms after SIGTERM (grace ${GRACE_S}s)`);
    expect(exitMs).toBeLessThan(GRACE_S * 1000);
    expect(exitMs).toBeGreaterThanOrEqual((GRACE_S - 15) * 1000 - 500);
    const order = server.logs.map((l) => l.msg);
    const termHelm = order.indexOf("grace period nearly over: sending SIGTERM to running helm processes");
    expect(termHelm).toBeGreaterThan(0);
    const stopped = server.logs.findIndex((l) => l.msg === "helm install failed");
    expect(stopped).toBeGreaterThan(termHelm);
    expect(server.logs[stopped]).toMatchObject({ aborted: true, timedOut: false });

    // Helm recorded its failure (or the operation marked the revision failed): never pending.
    expect(await statuses(ns, "web")).toEqual(["failed"]);
    expect(await leaseOf(ns, "web")).toBeUndefined();

    const records = await auditOf(server.auditPath, ns);
    const installs = records.filter((r) => r.method === "paas.v1.ReleaseService/InstallRelease");
    expect(installs.map((r) => [r.stage, r.outcome ?? ""]).sort()).toEqual([
      ["intent", ""],
      ["outcome", "failed"],
    ]);
    expect(installs.find((r) => r.stage === "outcome")).toMatchObject({ errorCode: "unavailable", revisionAfter: 1 });
    expectClosedOnce(records);
  });
});
