import { setTimeout as sleep } from "node:timers/promises";
import * as k8s from "@kubernetes/client-node";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, describe, expect, it } from "vitest";
import { createPaasClient, type PaasClient } from "../../clients/paas-client.ts";
import { AuditOutcome, AuditService, AuditStage, type AuditEvent } from "../../gen/paas/v1/audit_pb.js";
import { ReleaseStatus } from "../../gen/paas/v1/release_pb.js";
import { LeaseManager, leaseRecord } from "../../src/kube/leases/leases.ts";
import { failure } from "../support/failure.ts";
import {
  startServer,
  TEST_LEASE_NAMESPACE,
  testbedEnv,
  uniqueNamespace,
  type ServerProcess,
} from "../support/testbed.ts";

// Fault injection: the operator is SIGKILLed (with helm) in the middle of an upgrade --wait,
// as when its container is killed. A restarted replica must show the release as pending,
// repair it once the dead operation's Lease has expired, let the next upgrade through, and
// close the killed operation in the audit log as "recovered".

const tb = testbedEnv();
const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
const core = kc.makeApiClient(k8s.CoreV1Api);
const coordination = kc.makeApiClient(k8s.CoordinationV1Api);
const ns = uniqueNamespace("crash");
// Each server's reconciler repairs pending releases in every namespace under its prefix:
// keep it to this file's namespaces, away from helm runs of other suites.
const PREFIX = "paas-ws-crash-";

// Long enough that the restarted replica (2-4 s to start) is up while the dead Lease is still live.
const LEASE_SECONDS = 10;
const FAST = {
  NAMESPACE_PREFIX: PREFIX,
  LEASE_DURATION: String(LEASE_SECONDS),
  HEARTBEAT_INTERVAL: "1",
  RECONCILE_INTERVAL: "2",
};
const slowPods = (delay: string) => ({ podAnnotations: { "pod-ready.stage.kwok.x-k8s.io/delay": delay } });

const servers: ServerProcess[] = [];

afterAll(async () => {
  for (const s of servers) await s.stop().catch(() => undefined);
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
  for (const release of ["web", "api"]) {
    await coordination
      .deleteNamespacedLease({ name: LeaseManager.leaseName(ns, release), namespace: TEST_LEASE_NAMESPACE })
      .catch(() => undefined);
  }
});

async function start(
  env: Record<string, string>,
): Promise<{ server: ServerProcess; client: PaasClient; replica: string }> {
  const server = await startServer({ ...FAST, ...env });
  servers.push(server);
  const replica = String(server.logs.find((l) => l.msg === "listening")?.replica ?? "");
  expect(replica).not.toBe("");
  return {
    server,
    client: createPaasClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, protocol: "grpc" }),
    replica,
  };
}

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** The release's storage Secrets, newest revision last. */
async function storage(release: string): Promise<k8s.V1Secret[]> {
  const list = await core.listNamespacedSecret({ namespace: ns, labelSelector: `owner=helm,name=${release}` });
  return list.items.sort((a, b) => Number(a.metadata?.labels?.version) - Number(b.metadata?.labels?.version));
}

async function readLease(release: string): Promise<k8s.V1Lease | undefined> {
  return coordination
    .readNamespacedLease({ name: LeaseManager.leaseName(ns, release), namespace: TEST_LEASE_NAMESPACE })
    .catch((err: { code?: number }) => {
      if (err.code === 404) return undefined;
      throw err;
    });
}

async function auditEvents(client: PaasClient, release: string): Promise<AuditEvent[]> {
  const audit = createClient(AuditService, client.transport);
  const res = await audit.listAuditEvents({ namespace: ns, release, pageSize: 1000 });
  return res.events;
}

/** The outcome records of each operation id. */
function outcomesByOperation(events: AuditEvent[]): Map<string, AuditEvent[]> {
  const by = new Map<string, AuditEvent[]>();
  for (const e of events)
    if (e.stage === AuditStage.OUTCOME) by.set(e.operationId, [...(by.get(e.operationId) ?? []), e]);
  return by;
}

function expectEveryOperationClosedOnce(events: AuditEvent[]): void {
  const outcomes = outcomesByOperation(events);
  for (const [id, list] of outcomes) expect(list, `outcomes of operation ${id}`).toHaveLength(1);
  for (const intent of events.filter((e) => e.stage === AuditStage.INTENT)) {
    expect(outcomes.get(intent.operationId), `outcome of ${intent.method} ${intent.operationId}`).toHaveLength(1);
  }
}

describe("crash of the operator during an upgrade --wait", () => {
  let b: { server: ServerProcess; client: PaasClient; replica: string };

  it("shows the release pending, repairs it after the dead Lease expires, and closes the killed operation as recovered", async () => {
    const a = await start({});
    await a.client.namespaces.createNamespace({ name: ns, podSecurity: "baseline" });
    const installed = await a.client.releases.installRelease({
      namespace: ns,
      name: "web",
      chart: "testbed/podinfo",
      version: "6.13.0",
    });
    expect(installed.release).toMatchObject({ revision: 1, status: ReleaseStatus.DEPLOYED });

    // An upgrade whose pods take a minute to become ready: helm sits in --wait.
    const interrupted = a.client.releases
      .upgradeRelease({ namespace: ns, name: "web", values: slowPods("60s"), wait: true })
      .then(
        () => "finished" as const,
        (err: unknown) => ConnectError.from(err),
      );
    await until("helm upgrade started", () => a.server.logs.some((l) => l.msg === "helm upgrade started"), 30_000, 50);
    await sleep(1500);
    // The operation holds the release's Lease while helm runs.
    const held = await readLease("web");
    expect(held).toBeDefined();
    const heldBy = leaseRecord(held!);
    expect(heldBy.holder.startsWith(`${a.replica}/`)).toBe(true);
    const killedOperation = heldBy.holder.slice(a.replica.length + 1);
    expect(held!.metadata?.annotations).toMatchObject({ "paas.io/namespace": ns, "paas.io/release": "web" });

    const killedAt = Date.now();
    const pids = await a.server.crash();
    expect(pids.length).toBeGreaterThan(1); // the server and its helm
    expect(await interrupted).not.toBe("finished");

    // Helm died in the middle: its revision stays pending-upgrade in storage.
    const afterCrash = await storage("web");
    expect(afterCrash.map((s) => [s.metadata?.labels?.version, s.metadata?.labels?.status])).toEqual([
      ["1", "deployed"],
      ["2", "pending-upgrade"],
    ]);

    // A restarted replica (same audit file, same key) finds the release pending, held by a
    // Lease nobody renews any more.
    b = await start({ AUDIT_SQLITE_PATH: a.server.auditPath, API_KEY: a.server.apiKey });
    const expiresAt =
      (leaseRecord((await readLease("web"))!).renewedAt?.getTime() ?? 0) + heldBy.durationSeconds * 1000;
    const restartMs = Date.now() - killedAt;
    expect(Date.now(), `B must be up before A's Lease expires (restart took ${restartMs} ms)`).toBeLessThan(
      expiresAt - 1000,
    );
    const pending = await b.client.releases.getRelease({ namespace: ns, name: "web" });
    expect(pending.release).toMatchObject({
      revision: 2,
      status: ReleaseStatus.PENDING_UPGRADE,
      lockedBy: heldBy.holder,
    });
    expect(pending.release?.pendingSince).toBeDefined();
    const since = Number(pending.release!.pendingSince!.seconds) * 1000;
    expect(Math.abs(since - killedAt)).toBeLessThan(30_000);

    // The next upgrade waits for the dead Lease to expire, repairs revision 2 and proceeds.
    const t0 = Date.now();
    const next = await b.client.releases.upgradeRelease({ namespace: ns, name: "web", values: {}, resetValues: true });
    const recoveredAfter = Date.now() - killedAt;
    expect(next.release).toMatchObject({ revision: 3, status: ReleaseStatus.DEPLOYED });
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt - 1000);
    console.log(
      `crash-recovery: B listening ${restartMs} ms after the crash; next upgrade took ${Date.now() - t0} ms; release usable ${recoveredAfter} ms after the crash (Lease ${LEASE_SECONDS}s)`,
    );

    const history = await b.client.releases.listReleaseRevisions({ namespace: ns, name: "web" });
    expect(history.revisions.map((r) => [r.revision, r.status])).toEqual([
      [1, ReleaseStatus.SUPERSEDED],
      [2, ReleaseStatus.FAILED],
      [3, ReleaseStatus.DEPLOYED],
    ]);
    expect(history.revisions[1]?.description).toMatch(/interrupted/i);
    expect((await storage("web")).map((s) => s.metadata?.labels?.status)).toEqual(["superseded", "failed", "deployed"]);

    // Audit: the killed operation has its intent (written by A before helm) and is closed
    // as recovered; every operation has exactly one outcome.
    const events = await until(
      "the killed operation's recovered outcome",
      async () => {
        const ev = await auditEvents(b.client, "web");
        return ev.some((e) => e.operationId === killedOperation && e.stage === AuditStage.OUTCOME) ? ev : undefined;
      },
      20_000,
      500,
    );
    const killed = events.filter((e) => e.operationId === killedOperation);
    expect(killed.map((e) => [e.stage, e.outcome])).toEqual(
      expect.arrayContaining([
        [AuditStage.INTENT, AuditOutcome.UNSPECIFIED],
        [AuditStage.OUTCOME, AuditOutcome.RECOVERED],
      ]),
    );
    expect(killed).toHaveLength(2);
    expect(killed.find((e) => e.stage === AuditStage.INTENT)).toMatchObject({
      method: "paas.v1.ReleaseService/UpgradeRelease",
      replica: a.replica,
      revisionBefore: 0,
    });
    // (The outcome's `replica` is copied from the intent, i.e. A's, although B wrote it.)
    const closed = killed.find((e) => e.stage === AuditStage.OUTCOME)!;
    expect(closed).toMatchObject({ revisionAfter: 2, errorCode: "" });
    expect(closed.errorMessage).toContain(a.replica);
    const upgrades = events.filter(
      (e) => e.method === "paas.v1.ReleaseService/UpgradeRelease" && e.stage === AuditStage.OUTCOME,
    );
    expect(upgrades.map((e) => e.outcome).sort()).toEqual([AuditOutcome.SUCCEEDED, AuditOutcome.RECOVERED].sort());
    expectEveryOperationClosedOnce(events);

    // Nothing holds the release any more.
    await until("the Lease of web to be gone", async () => (await readLease("web")) === undefined || undefined, 5_000);
  });

  it("refuses RecoverRelease with ABORTED naming the holder while an upgrade --wait holds the Lease, and leaves the release alone", async () => {
    expect(b, "runs after the first case").toBeDefined();
    await b.client.releases.installRelease({ namespace: ns, name: "api", chart: "testbed/podinfo", version: "6.13.0" });
    const upgrade = b.client.releases.upgradeRelease({
      namespace: ns,
      name: "api",
      values: slowPods("15s"),
      wait: true,
    });
    const running = await until(
      "api to be pending-upgrade and locked",
      async () => {
        const r = (await b.client.releases.getRelease({ namespace: ns, name: "api" })).release;
        return r?.status === ReleaseStatus.PENDING_UPGRADE && r.lockedBy ? r : undefined;
      },
      30_000,
    );
    expect(running.lockedBy.startsWith(`${b.replica}/`)).toBe(true);
    const before = (await storage("api")).map((s) => [
      s.metadata?.name,
      s.metadata?.resourceVersion,
      s.metadata?.labels?.status,
    ]);
    expect(before.at(-1)?.[2]).toBe("pending-upgrade");

    // Through the replica running the upgrade, and through another replica that only sees the Lease.
    const other = await start({});
    for (const client of [b.client, other.client]) {
      const refused = await failure(client.releases.recoverRelease({ namespace: ns, name: "api" }));
      expect(refused.code).toBe(Code.Aborted);
      expect(refused.rawMessage).toContain(running.lockedBy);
    }
    expect(
      (await storage("api")).map((s) => [s.metadata?.name, s.metadata?.resourceVersion, s.metadata?.labels?.status]),
    ).toEqual(before);

    const done = await upgrade;
    expect(done.release).toMatchObject({ revision: 2, status: ReleaseStatus.DEPLOYED });
    expect((await storage("api")).map((s) => s.metadata?.labels?.status)).toEqual(["superseded", "deployed"]);

    // Each refusal is recorded as an operation of its own that failed; nothing recovered.
    for (const client of [b.client, other.client]) {
      const events = await auditEvents(client, "api");
      const recovers = events.filter((e) => e.method === "paas.v1.ReleaseService/RecoverRelease");
      expect(recovers.map((e) => [e.stage, e.outcome]).sort()).toEqual([
        [AuditStage.INTENT, AuditOutcome.UNSPECIFIED],
        [AuditStage.OUTCOME, AuditOutcome.FAILED],
      ]);
      expectEveryOperationClosedOnce(events);
      const refusal = recovers.find((e) => e.stage === AuditStage.OUTCOME)!;
      expect(refusal.errorCode).not.toBe("");
      expect(refusal.errorMessage).toContain(running.lockedBy);
    }
    expect((await auditEvents(b.client, "api")).some((e) => e.outcome === AuditOutcome.RECOVERED)).toBe(false);
    await until("the Lease of api to be gone", async () => (await readLease("api")) === undefined || undefined, 5_000);
  });
});
