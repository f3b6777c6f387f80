import { Code, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ReleaseService, ReleaseStatus } from "../../../gen/paas/v1/release_pb.js";
import { ErrorInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import type { AuditRecord, AuditStore } from "../../../src/domain/audit.ts";
import { PaasError } from "../../../src/errors.ts";
import type { InstallOptions, UpgradeOptions } from "../../../src/helm/helm-client.ts";
import { Reconciler } from "../../../src/operations/reconciler.ts";
import { failure } from "../../support/failure.ts";
import { auditRecord } from "../../support/memory-audit-store.ts";
import { API_KEY, createHarness, managedNamespace } from "../../support/harness.ts";

const NS = "paas-ws-ops";
const CHART = "oci://registry.example:5000/charts/podinfo";

async function all(store: AuditStore): Promise<AuditRecord[]> {
  return (await store.list({ pageSize: 1000 })).records.reverse();
}

async function harness(overrides: Parameters<typeof createHarness>[0] = {}) {
  const h = await createHarness(overrides);
  managedNamespace(h.cluster, NS);
  return h;
}

/** withKey sends an Idempotency-Key header on every call. */
function clientWithHeaders(h: Awaited<ReturnType<typeof harness>>, headers: Record<string, string>) {
  const t = createRouterTransport(h.app.routes, {
    router: { interceptors: h.app.interceptors },
    transport: {
      interceptors: [
        (next) => (req) => {
          req.header.set("x-api-key", API_KEY);
          for (const [k, v] of Object.entries(headers)) req.header.set(k, v);
          return next(req);
        },
      ],
    },
  });
  return createClient(ReleaseService, t);
}

describe("audit log", () => {
  it("writes an intent before helm and an outcome after it, with who, what and the revisions", async () => {
    const h = await harness();
    let intentsWhenHelmRan = -1;
    const install = h.helm.install.bind(h.helm);
    h.helm.install = async (o: InstallOptions) => {
      intentsWhenHelmRan = (await all(h.audit)).filter((r) => r.stage === "intent").length;
      return install(o);
    };
    await h.releases.installRelease(
      { namespace: NS, name: "web", chart: CHART, version: "6.0.0", values: { password: "hunter2" } },
      { headers: { "user-agent": "erp/1.0" } },
    );
    await h.releases.upgradeRelease({ namespace: NS, name: "web", version: "6.1.0" });

    expect(intentsWhenHelmRan).toBe(1);
    const records = await all(h.audit);
    expect(records.map((r) => `${r.stage}:${r.outcome ?? ""}:${r.method.split("/")[1]}`)).toEqual([
      "intent::InstallRelease",
      "outcome:succeeded:InstallRelease",
      "intent::UpgradeRelease",
      "outcome:succeeded:UpgradeRelease",
    ]);
    const [intent, outcome, , upgraded] = records as [AuditRecord, AuditRecord, AuditRecord, AuditRecord];
    expect(intent.operationId).toBe(outcome.operationId);
    expect(intent).toMatchObject({
      caller: "key-" + intent.caller.slice(4),
      namespace: NS,
      release: "web",
      chartReference: CHART,
      chartVersion: "6.0.0",
      userAgent: "erp/1.0",
      replica: h.locks.replica,
    });
    expect(intent.caller).toMatch(/^key-[0-9a-f]{8}$/);
    expect(intent.valuesSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(records)).not.toContain("hunter2");
    expect(outcome).toMatchObject({ revisionBefore: 0, revisionAfter: 1, errorCode: "" });
    expect(upgraded).toMatchObject({ revisionBefore: 1, revisionAfter: 2, chartVersion: "6.1.0" });
    // helm history shows who made each revision and in which operation.
    const stored = h.cluster.history(NS, "web")[1]!;
    expect(stored.labels["paas-operation"]).toBe(upgraded.operationId);
    expect(stored.labels["paas-caller"]).toBe(intent.caller);
    const got = await h.releases.getRelease({ namespace: NS, name: "web" });
    expect(got.release).toMatchObject({ operationId: upgraded.operationId, changedBy: intent.caller });
  });

  it("stamps a rollback's revision with its own operation, not the one of the revision it returned to", async () => {
    const h = await harness();
    await h.releases.installRelease({ namespace: NS, name: "web", chart: CHART });
    await h.releases.upgradeRelease({ namespace: NS, name: "web" });
    const res = await h.releases.rollbackRelease({ namespace: NS, name: "web", revision: 1 });
    const rollback = (await all(h.audit)).find((r) => r.method.endsWith("RollbackRelease") && r.stage === "outcome")!;
    expect(rollback).toMatchObject({ outcome: "succeeded", revisionBefore: 2, revisionAfter: 3 });
    expect(res.release?.operationId).toBe(rollback.operationId);
    expect(h.cluster.history(NS, "web")[2]!.labels["paas-operation"]).toBe(rollback.operationId);
    expect((await h.releases.getRelease({ namespace: NS, name: "web" })).release?.operationId).toBe(
      rollback.operationId,
    );
  });

  it("records a failed operation with its error class", async () => {
    const h = await harness();
    h.helm.errors.install = new PaasError("failed_precondition", "render guard: ClusterRoleBinding is cluster-scoped");
    const err = await failure(h.releases.installRelease({ namespace: NS, name: "bad", chart: CHART }));
    expect(err.code).toBe(Code.FailedPrecondition);
    const [, outcome] = await all(h.audit);
    expect(outcome).toMatchObject({
      stage: "outcome",
      outcome: "failed",
      errorCode: "failed_precondition",
      errorMessage: "render guard: ClusterRoleBinding is cluster-scoped",
    });
  });

  it("records denials (no key, wrong key, outside the prefix) without an intent and without running helm", async () => {
    const h = await harness();
    await failure(h.clients(null).releases.installRelease({ namespace: NS, name: "x", chart: CHART }));
    await failure(h.clients("wrong-key-0123456789").releases.uninstallRelease({ namespace: NS, name: "x" }));
    await failure(h.releases.installRelease({ namespace: "kube-system", name: "x", chart: CHART }));
    // Reads are not audited.
    await failure(h.clients(null).releases.getRelease({ namespace: NS, name: "x" }));
    const records = await all(h.audit);
    expect(records.map((r) => `${r.stage}:${r.outcome}:${r.errorCode}:${r.namespace}`)).toEqual([
      `outcome:denied:unauthenticated:${NS}`,
      `outcome:denied:unauthenticated:${NS}`,
      "outcome:denied:permission_denied:kube-system",
    ]);
    expect(records[2]!.caller).toMatch(/^key-/);
    expect(JSON.stringify(records)).not.toContain("wrong-key-0123456789");
    expect(h.helm.verbs()).not.toContain("install");
  });

  it("refuses mutations with UNAVAILABLE when the intent cannot be written, and keeps serving reads", async () => {
    const h = await harness();
    await h.releases.installRelease({ namespace: NS, name: "web", chart: CHART });
    const append = h.audit.append.bind(h.audit);
    const createOperation = h.audit.createOperation.bind(h.audit);
    // The intent is written with the operation, in one transaction.
    h.audit.append = h.audit.createOperation = async () => {
      throw new PaasError("unavailable", "audit store unavailable: connection refused");
    };
    const err = await failure(h.releases.upgradeRelease({ namespace: NS, name: "web" }));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toMatch(/audit log is unavailable/);
    expect(h.helm.verbs().filter((v) => v === "upgrade")).toHaveLength(0);
    expect((await h.releases.getRelease({ namespace: NS, name: "web" })).release?.revision).toBe(1);
    h.audit.append = append;
    h.audit.createOperation = createOperation;
    await h.releases.upgradeRelease({ namespace: NS, name: "web" });
    expect(h.cluster.history(NS, "web")).toHaveLength(2);
  });
});

describe("idempotency keys", () => {
  it("answers a retry with the same key and body from the stored result without running helm again", async () => {
    const h = await harness();
    const req = { namespace: NS, name: "web", chart: CHART, version: "6.0.0", idempotencyKey: "erp-order-17" };
    const first = await h.releases.installRelease(req);
    const second = await h.releases.installRelease(req);
    expect(second.release).toEqual(first.release);
    expect(h.helm.verbs().filter((v) => v === "install")).toHaveLength(1);
    expect((await all(h.audit)).filter((r) => r.stage === "intent")).toHaveLength(1);
  });

  it("takes the key from the Idempotency-Key header too, and refuses a header and field that differ", async () => {
    const h = await harness();
    const client = clientWithHeaders(h, { "idempotency-key": "hdr-1" });
    await client.installRelease({ namespace: NS, name: "web", chart: CHART });
    await client.installRelease({ namespace: NS, name: "web", chart: CHART });
    expect(h.helm.verbs().filter((v) => v === "install")).toHaveLength(1);
    const err = await failure(
      client.installRelease({ namespace: NS, name: "web", chart: CHART, idempotencyKey: "other" }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
  });

  it("refuses the same key with a different request: FAILED_PRECONDITION with reason IDEMPOTENCY_KEY_REUSED", async () => {
    const h = await harness();
    await h.releases.installRelease({ namespace: NS, name: "web", chart: CHART, idempotencyKey: "k1" });
    const err = await failure(
      h.releases.installRelease({ namespace: NS, name: "web", chart: CHART, version: "9.9.9", idempotencyKey: "k1" }),
    );
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.findDetails(ErrorInfoSchema)[0]?.reason).toBe("IDEMPOTENCY_KEY_REUSED");
    expect(h.helm.verbs().filter((v) => v === "install")).toHaveLength(1);
  });

  it("answers ABORTED (IDEMPOTENCY_KEY_IN_USE) while the first request with the key still runs", async () => {
    const h = await harness();
    h.helm.delayMs.install = 300;
    const req = { namespace: NS, name: "web", chart: CHART, idempotencyKey: "slow" };
    const first = h.releases.installRelease(req);
    await new Promise((r) => setTimeout(r, 50));
    const err = await failure(h.releases.installRelease(req));
    expect(err.code).toBe(Code.Aborted);
    expect(err.findDetails(ErrorInfoSchema)[0]?.reason).toBe("IDEMPOTENCY_KEY_IN_USE");
    await first;
    expect((await h.releases.installRelease(req)).release?.revision).toBe(1);
  });

  it("replays a stored failure, but frees the key after a transient refusal so that a retry runs", async () => {
    const h = await harness();
    h.helm.errors.install = new PaasError("failed_precondition", "chart not found");
    const a = await failure(
      h.releases.installRelease({ namespace: NS, name: "a", chart: CHART, idempotencyKey: "fail" }),
    );
    delete h.helm.errors.install;
    const b = await failure(
      h.releases.installRelease({ namespace: NS, name: "a", chart: CHART, idempotencyKey: "fail" }),
    );
    expect([a.code, b.code, b.rawMessage]).toEqual([
      Code.FailedPrecondition,
      Code.FailedPrecondition,
      "chart not found",
    ]);
    expect(h.helm.verbs().filter((v) => v === "install")).toHaveLength(1);

    h.locks.unavailable = new PaasError("unavailable", "Kubernetes API unreachable");
    expect(
      (
        await failure(
          h.releases.installRelease({ namespace: NS, name: "b", chart: CHART, idempotencyKey: "transient" }),
        )
      ).code,
    ).toBe(Code.Unavailable);
    h.locks.unavailable = undefined;
    expect(
      (await h.releases.installRelease({ namespace: NS, name: "b", chart: CHART, idempotencyKey: "transient" })).release
        ?.revision,
    ).toBe(1);
  });

  it("keeps keys per caller: another key's identical request runs on its own", async () => {
    const other = "other-key-0123456789abcdef";
    const h = await harness({ apiKeys: [API_KEY, other] });
    await h.releases.installRelease({ namespace: NS, name: "a", chart: CHART, idempotencyKey: "same" });
    const err = await failure(
      h.clients(other).releases.installRelease({ namespace: NS, name: "a", chart: CHART, idempotencyKey: "same" }),
    );
    // It ran (and found the name taken) instead of receiving the first caller's result.
    expect(err.code).toBe(Code.AlreadyExists);
  });

  it("validates the key", async () => {
    const h = await harness();
    const err = await failure(
      h.releases.installRelease({ namespace: NS, name: "a", chart: CHART, idempotencyKey: "has space" }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
  });
});

describe("one writer per release", () => {
  it("waits for the release's Lease, then answers ABORTED naming the holder", async () => {
    const h = await harness({ operationWaitMs: 200 });
    await h.releases.installRelease({ namespace: NS, name: "web", chart: CHART });
    const other = h.locks.holdFor({ namespace: NS, release: "web" }, "replica-b/op123");
    const started = Date.now();
    const err = await failure(h.releases.upgradeRelease({ namespace: NS, name: "web" }));
    expect(err.code).toBe(Code.Aborted);
    expect(err.rawMessage).toContain("replica-b/op123");
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    const [, , , outcome] = await all(h.audit);
    expect(outcome).toMatchObject({ outcome: "failed", errorCode: "aborted" });
    // locked_by shows who holds it.
    expect((await h.releases.getRelease({ namespace: NS, name: "web" })).release?.lockedBy).toBe("replica-b/op123");
    other.release();
    await h.releases.upgradeRelease({ namespace: NS, name: "web" });
    expect((await h.releases.getRelease({ namespace: NS, name: "web" })).release?.lockedBy).toBe("");
  });

  it("stops helm and answers UNAVAILABLE when the Lease is lost while helm runs", async () => {
    const h = await harness();
    await h.releases.installRelease({ namespace: NS, name: "web", chart: CHART });
    let signal: AbortSignal | undefined;
    h.helm.upgrade = async (o: UpgradeOptions) => {
      signal = o.signal;
      h.locks.lose({ namespace: NS, release: "web" });
      await new Promise((r) => setTimeout(r, 10));
      throw new PaasError("internal", "helm was terminated");
    };
    const err = await failure(h.releases.upgradeRelease({ namespace: NS, name: "web" }));
    expect(err.code).toBe(Code.Unavailable);
    expect(signal?.aborted).toBe(true);
    expect(h.locks.isHeld({ namespace: NS, release: "web" })).toBe(false);
  });

  it("answers UNAVAILABLE soon after a lost Lease even while helm is still stopping, and records the outcome when it ends", async () => {
    const h = await harness({ lostAnswerGraceMs: 50 });
    await h.releases.installRelease({ namespace: NS, name: "web", chart: CHART });
    let finishHelm!: () => void;
    const helmEnded = new Promise<void>((r) => (finishHelm = r));
    h.helm.upgrade = async () => {
      h.locks.lose({ namespace: NS, release: "web" });
      // helm does not exit on SIGTERM at once (client-go retrying an unreachable API).
      await helmEnded;
      throw new PaasError("unavailable", "helm: the Kubernetes API is unreachable");
    };
    const started = Date.now();
    const err = await failure(h.releases.upgradeRelease({ namespace: NS, name: "web" }));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toMatch(/still stopping/);
    expect(Date.now() - started).toBeLessThan(2000);
    // The release stays taken until helm is gone: nothing else may start on it.
    expect(h.locks.isHeld({ namespace: NS, release: "web" })).toBe(true);
    expect((await all(h.audit)).filter((r) => r.stage === "outcome" && r.method.endsWith("UpgradeRelease"))).toEqual(
      [],
    );
    finishHelm();
    await h.app.queue.idle();
    expect(h.locks.isHeld({ namespace: NS, release: "web" })).toBe(false);
    const outcome = (await all(h.audit)).filter((r) => r.stage === "outcome" && r.method.endsWith("UpgradeRelease"));
    expect(outcome).toEqual([expect.objectContaining({ outcome: "failed", errorCode: "unavailable" })]);
  });

  it("refuses new mutations while draining", async () => {
    const h = await harness();
    h.lifecycle.startDraining();
    expect((await failure(h.releases.installRelease({ namespace: NS, name: "web", chart: CHART }))).code).toBe(
      Code.Unavailable,
    );
    expect(await all(h.audit)).toEqual([]);
  });
});

describe("stuck releases", () => {
  function stick(h: Awaited<ReturnType<typeof harness>>, name: string, status: "pending-upgrade" | "pending-install") {
    const last = h.cluster.history(NS, name).at(-1)!;
    last.release.status = status;
    last.release.pendingSince = new Date("2026-11-21T09:00:00Z");
  }

  it("shows pending_since, repairs the release before the next upgrade and records the repair", async () => {
    const h = await harness();
    await h.releases.installRelease({ namespace: NS, name: "web", chart: CHART });
    stick(h, "web", "pending-upgrade");
    const got = await h.releases.getRelease({ namespace: NS, name: "web" });
    expect(got.release?.status).toBe(ReleaseStatus.PENDING_UPGRADE);
    expect(got.release?.pendingSince?.seconds).toBe(BigInt(Date.parse("2026-11-21T09:00:00Z") / 1000));
    let statusWhenHelmRan = "";
    const upgrade = h.helm.upgrade.bind(h.helm);
    h.helm.upgrade = async (o: UpgradeOptions) => {
      statusWhenHelmRan = h.cluster.history(NS, "web")[0]!.release.status;
      return upgrade(o);
    };
    await h.releases.upgradeRelease({ namespace: NS, name: "web" });
    expect(h.recovery.repaired).toEqual([`${NS}/web`]);
    expect(statusWhenHelmRan).toBe("failed");
    expect(h.cluster.history(NS, "web").at(-1)!.release).toMatchObject({ revision: 2, status: "deployed" });
    const recovered = (await all(h.audit)).filter((r) => r.outcome === "recovered");
    expect(recovered).toHaveLength(1);
    expect(recovered[0]!.errorMessage).toMatch(/revision 1 was pending-upgrade since 2026-11-21T09:00:00.000Z/);
  });

  it("RecoverRelease repairs a pending release, leaves others alone, and never touches one with a live Lease", async () => {
    const h = await harness();
    await h.releases.installRelease({ namespace: NS, name: "web", chart: CHART });
    const idle = await h.releases.recoverRelease({ namespace: NS, name: "web" });
    expect(idle).toMatchObject({ recovered: false });
    expect(idle.message).toMatch(/nothing to recover/);

    stick(h, "web", "pending-upgrade");
    const held = h.locks.holdFor({ namespace: NS, release: "web" }, "replica-b/op9");
    const err = await failure(h.releases.recoverRelease({ namespace: NS, name: "web" }));
    expect(err.code).toBe(Code.Aborted);
    expect(err.rawMessage).toContain("replica-b/op9");
    expect(h.cluster.history(NS, "web")[0]!.release.status).toBe("pending-upgrade");
    held.release();

    const res = await h.releases.recoverRelease({ namespace: NS, name: "web" });
    expect(res.recovered).toBe(true);
    expect(res.release?.status).toBe(ReleaseStatus.FAILED);
    const outcome = (await all(h.audit))
      .filter((r) => r.method.endsWith("RecoverRelease") && r.stage === "outcome")
      .at(-1);
    expect(outcome?.outcome).toBe("recovered");
    expect((await failure(h.releases.recoverRelease({ namespace: NS, name: "nope" }))).code).toBe(Code.NotFound);
  });

  it("the reconciler repairs stuck releases and closes intents of dead replicas, not of live ones", async () => {
    const h = await harness();
    await h.releases.installRelease({ namespace: NS, name: "web", chart: CHART });
    await h.releases.installRelease({ namespace: NS, name: "api", chart: CHART });
    stick(h, "web", "pending-upgrade");
    const intent = (over: Partial<AuditRecord>): AuditRecord =>
      auditRecord({
        id: `0000${over.operationId}`,
        time: new Date(Date.now() - 60_000),
        method: "paas.v1.ReleaseService/UpgradeRelease",
        namespace: NS,
        release: "web",
        replica: "dead-replica",
        ...over,
      });
    await h.audit.append(intent({ operationId: "deadop1" }));
    await h.audit.append(intent({ operationId: "deadop2", release: "api" }));
    await h.audit.heartbeat("live-replica");
    await h.audit.append(intent({ operationId: "liveop1", release: "api", replica: "live-replica" }));

    const reconciler = new Reconciler({
      repair: h.app.repair,
      audit: h.audit,
      locks: h.locks,
      recovery: h.recovery,
      replica: h.locks.replica,
      prefix: "paas-ws-",
      heartbeatMs: 60_000,
      intervalMs: 60_000,
      minPendingAgeMs: 30_000,
      logger: (await import("pino")).default({ level: "silent" }),
    });
    // A revision pending for a short while only is left for the next operation to repair.
    await h.releases.installRelease({ namespace: NS, name: "young", chart: CHART });
    const young = h.cluster.history(NS, "young").at(-1)!;
    young.release.status = "pending-upgrade";
    young.release.pendingSince = new Date(Date.now() - 5_000);
    expect(await reconciler.reconcile()).toEqual({ repaired: 1, closed: 1 });
    expect(young.release.status).toBe("pending-upgrade");
    expect(h.cluster.history(NS, "web")[0]!.release.status).toBe("failed");
    const open = (await h.audit.openIntents()).map((r) => r.operationId);
    expect(open).toEqual(["liveop1"]);
    const closed = (await all(h.audit)).filter((r) => r.outcome === "recovered");
    expect(closed.map((r) => r.operationId).sort()).toEqual(["deadop1", "deadop2"]);
    // A second pass finds nothing to do.
    expect(await reconciler.reconcile()).toEqual({ repaired: 0, closed: 0 });
    await reconciler.stop();
  });
});

describe("REST statuses of the new refusals", () => {
  it("maps reasons to ErrorInfo on gRPC", async () => {
    const h = await harness({ valuesLimits: { maxBytes: 2048, maxDepth: 10, maxKeys: 5 } });
    const err = await failure(
      h.releases.installRelease({
        namespace: NS,
        name: "a",
        chart: CHART,
        values: { a: 1, b: 2, c: 3, d: 4, e: 5, f: 6 },
      }),
    );
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.findDetails(ErrorInfoSchema)).toEqual([
      expect.objectContaining({ reason: "VALUES_TOO_LARGE", domain: "paas.io" }),
    ]);
  });
});
