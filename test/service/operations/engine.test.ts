import { Code, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { OperationService, OperationState, StepState } from "../../../gen/paas/v1/operation_pb.js";
import { ReleaseService } from "../../../gen/paas/v1/release_pb.js";
import { newAuditId, newOperationId } from "../../../src/audit/ids.ts";
import { sha256 } from "../../../src/auth/key-file.ts";
import { Scope } from "../../../src/auth/scopes.ts";
import { toJsonString } from "@bufbuild/protobuf";
import { OperationSchema } from "../../../gen/paas/v1/operation_pb.js";
import { failure } from "../../support/failure.ts";
import { operation, record } from "../../support/audit-contract.ts";
import { API_KEY, createHarness, managedNamespace } from "../../support/harness.ts";

const NS = "paas-ws-ops";
const CHART = "oci://registry.example:5000/charts/podinfo";

async function harness(overrides: Parameters<typeof createHarness>[0] = {}) {
  const h = await createHarness(overrides);
  managedNamespace(h.cluster, NS);
  return h;
}

type H = Awaited<ReturnType<typeof harness>>;

/** clients with extra headers on every call (Prefer, another API key). */
function clientsWith(h: H, headers: Record<string, string>) {
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
  return { releases: createClient(ReleaseService, t), operations: createClient(OperationService, t) };
}

const stepNames = (op: { steps: Array<{ name: string }> } | undefined) => (op?.steps ?? []).map((s) => s.name);

async function until<T>(fn: () => Promise<T | undefined>, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("operations: every mutation is one", () => {
  it("a synchronous install answers as before, with the operation id, and the operation records its steps in order", async () => {
    const h = await harness();
    const res = await h.releases.installRelease({
      namespace: NS,
      name: "web",
      chart: CHART,
      version: "6.0.0",
      values: { password: "hunter2" },
    });
    expect(res.release?.name).toBe("web");
    expect(res.operationId).toMatch(/^[0-9a-z]{26}$/);
    expect(res.operation).toBeUndefined();
    expect(res.release?.operationId).toBe(res.operationId);

    const { operation: op } = await h.operations.getOperation({ id: res.operationId });
    expect(op?.state).toBe(OperationState.SUCCEEDED);
    expect(op?.done).toBe(true);
    expect(op?.kind).toBe("install");
    expect(op?.namespace).toBe(NS);
    expect(op?.release).toBe("web");
    expect(stepNames(op)).toEqual(["wait-for-release", "pull", "apply", "record"]);
    expect(op?.steps.map((s) => s.order)).toEqual([1, 2, 3, 4]);
    expect(op?.steps.every((s) => s.state === StepState.SUCCEEDED && s.startedAt && s.finishedAt)).toBe(true);
    expect(op?.steps[0]?.detail).toMatch(/holding the Lease/);
    expect(op?.responseType).toBe("paas.v1.InstallReleaseResponse");
    expect((op?.response as { release?: { name?: string } }).release?.name).toBe("web");
    // The values only as their hash, never the values.
    expect(toJsonString(OperationSchema, op!)).not.toContain("hunter2");
    expect(op?.params).toMatchObject({ namespace: NS, name: "web", chart: CHART, version: "6.0.0", wait: false });
    expect((op?.params as Record<string, unknown>).values_sha256).toMatch(/^[0-9a-f]{64}$/);
    // The same id in the audit log.
    const audit = (await h.audit.list({ pageSize: 10, operationId: res.operationId })).records;
    expect(audit.map((r) => r.stage).sort()).toEqual(["intent", "outcome"]);
  });

  it("creating a namespace records its provisioning steps", async () => {
    const h = await harness();
    const res = await h.namespaces.createNamespace({ name: "paas-ws-new" });
    const { operation: op } = await h.operations.getOperation({ id: res.operationId });
    expect(stepNames(op)).toEqual([
      "wait-for-release",
      "namespace",
      "limit-range",
      "quota",
      "network-policy",
      "deployer-identity",
      "ready",
      "record",
    ]);
    expect(op?.kind).toBe("create-namespace");
  });

  it("async: answers at once with the queued operation and no release; Wait returns it succeeded with the response", async () => {
    const h = await harness();
    h.helm.delayMs.install = 300;
    const res = await h.releases.installRelease({ namespace: NS, name: "web", chart: CHART, async: true });
    expect(res.release).toBeUndefined();
    expect(res.operation?.state).toBe(OperationState.QUEUED);
    expect(res.operation?.id).toBe(res.operationId);
    const waited = await h.operations.waitOperation({ id: res.operationId, timeout: { seconds: 10n, nanos: 0 } });
    expect(waited.operation?.state).toBe(OperationState.SUCCEEDED);
    expect((waited.operation?.response as { release?: { name?: string } }).release?.name).toBe("web");
    expect(h.cluster.history(NS, "web")).toHaveLength(1);
  });

  it("Prefer: respond-async is the async field's header form", async () => {
    const h = await harness();
    const c = clientsWith(h, { prefer: "respond-async" });
    const res = await c.releases.installRelease({ namespace: NS, name: "web", chart: CHART });
    expect(res.operation?.state).toBe(OperationState.QUEUED);
    await h.operations.waitOperation({ id: res.operationId });
  });

  it("async with an idempotency key returns the same operation on retry, running or done, and helm runs once", async () => {
    const h = await harness();
    h.helm.delayMs.install = 200;
    const req = { namespace: NS, name: "web", chart: CHART, async: true, idempotencyKey: "erp-order-9" };
    const first = await h.releases.installRelease(req);
    const again = await h.releases.installRelease(req);
    expect(again.operationId).toBe(first.operationId);
    await h.operations.waitOperation({ id: first.operationId });
    const done = await h.releases.installRelease(req);
    expect(done.operationId).toBe(first.operationId);
    expect(done.operation?.state).toBe(OperationState.SUCCEEDED);
    expect(h.helm.verbs().filter((v) => v === "install")).toHaveLength(1);
  });

  it("WatchOperation streams the state, each step, and ends after the terminal state", async () => {
    const h = await harness();
    await h.releases.installRelease({ namespace: NS, name: "web", chart: CHART });
    h.helm.delayMs.upgrade = 200;
    // Queued behind a slow upgrade of the same release, so that the watch opens on QUEUED.
    await h.releases.upgradeRelease({ namespace: NS, name: "web", async: true });
    const res = await h.releases.upgradeRelease({ namespace: NS, name: "web", async: true });
    const seen: Array<{ state: OperationState; steps: string[]; detail: string }> = [];
    for await (const m of h.operations.watchOperation({ id: res.operationId })) {
      seen.push({
        state: m.operation!.state,
        steps: stepNames(m.operation),
        detail: m.operation!.steps[0]?.detail ?? "",
      });
    }
    expect(seen[0]?.state).toBe(OperationState.QUEUED);
    expect(seen[0]?.detail).toMatch(/^queued behind operation /);
    expect(seen.at(-1)?.state).toBe(OperationState.SUCCEEDED);
    expect(seen.at(-1)?.steps).toEqual(["wait-for-release", "pull", "apply", "record"]);
    expect(seen.some((s) => s.state === OperationState.RUNNING && s.steps.includes("apply"))).toBe(true);
    // Opened on an ended operation: one message, then the end.
    const again = [];
    for await (const m of h.operations.watchOperation({ id: res.operationId })) again.push(m);
    expect(again).toHaveLength(1);
  });

  it("ListOperations lists newest first, filtered, paged", async () => {
    const h = await harness();
    const a = await h.releases.installRelease({ namespace: NS, name: "a", chart: CHART });
    const b = await h.releases.installRelease({ namespace: NS, name: "b", chart: CHART });
    await h.releases.upgradeRelease({ namespace: NS, name: "a" });
    const all = await h.operations.listOperations({ namespace: NS });
    expect(all.operations).toHaveLength(3);
    expect(all.operations[2]?.id).toBe(a.operationId);
    expect((await h.operations.listOperations({ namespace: NS, release: "b" })).operations.map((o) => o.id)).toEqual([
      b.operationId,
    ]);
    expect((await h.operations.listOperations({ kind: "upgrade" })).operations).toHaveLength(1);
    expect((await h.operations.listOperations({ state: OperationState.FAILED })).operations).toHaveLength(0);
    const page1 = await h.operations.listOperations({ pageSize: 2 });
    expect(page1.operations).toHaveLength(2);
    const page2 = await h.operations.listOperations({ pageSize: 2, pageToken: page1.nextPageToken });
    expect(page2.operations.map((o) => o.id)).toEqual([a.operationId]);
    expect(page2.nextPageToken).toBe("");
  });
});

describe("operations: cancel", () => {
  it("a queued operation (behind a slow upgrade of the same release) is CANCELLED at once and its helm never runs", async () => {
    const h = await harness();
    await h.releases.installRelease({ namespace: NS, name: "web", chart: CHART });
    h.helm.delayMs.upgrade = 500;
    const slow = await h.releases.upgradeRelease({ namespace: NS, name: "web", async: true });
    const queued = await h.releases.upgradeRelease({ namespace: NS, name: "web", version: "9.9.9", async: true });
    const { operation } = await h.operations.cancelOperation({ id: queued.operationId });
    expect(operation?.state).toBe(OperationState.CANCELLED);
    expect(operation?.error?.code).toBe("CANCELLED");
    await h.operations.waitOperation({ id: slow.operationId });
    await h.app.engine.idle();
    const upgrades = h.helm.calls
      .filter((c) => c.verb === "upgrade")
      .map((c) => (c.args as { chart: { version?: string } }).chart.version);
    expect(upgrades).not.toContain("9.9.9");
    expect(h.helm.verbs().filter((v) => v === "upgrade")).toHaveLength(1);
    const outcome = (await h.audit.list({ pageSize: 10, operationId: queued.operationId })).records.find(
      (r) => r.stage === "outcome",
    );
    expect(outcome?.errorCode).toBe("canceled");
  });

  it("during apply of an install, helm is stopped through its signal (SIGTERM) and the operation ends CANCELLED", async () => {
    const h = await harness();
    h.helm.delayMs.install = 5000;
    const res = await h.releases.installRelease({ namespace: NS, name: "web", chart: CHART, async: true });
    await until(async () =>
      (await h.operations.getOperation({ id: res.operationId })).operation?.steps.some((s) => s.name === "apply")
        ? true
        : undefined,
    );
    const { operation } = await h.operations.cancelOperation({ id: res.operationId });
    expect(operation?.state).toBe(OperationState.CANCELLED);
    expect(operation?.error?.message).toMatch(/helm was sent SIGTERM/);
    expect(h.helm.terminated).toEqual(["install"]);
    expect(operation?.steps.find((s) => s.name === "apply")?.state).toBe(StepState.CANCELLED);
  });

  it("a synchronous caller whose operation is cancelled gets CANCELLED", async () => {
    const h = await harness();
    h.helm.delayMs.install = 5000;
    const call = failure(h.releases.installRelease({ namespace: NS, name: "web", chart: CHART }));
    const op = await until(async () =>
      (await h.operations.listOperations({ namespace: NS })).operations.find((o) =>
        o.steps.some((s) => s.name === "apply"),
      ),
    );
    await h.operations.cancelOperation({ id: op.id });
    const err = await call;
    expect(err.code).toBe(Code.Canceled);
  });

  it("a rollback whose helm has started answers FAILED_PRECONDITION and runs to its end", async () => {
    const h = await harness();
    await h.releases.installRelease({ namespace: NS, name: "web", chart: CHART });
    await h.releases.upgradeRelease({ namespace: NS, name: "web" });
    h.helm.delayMs.rollback = 400;
    const res = await h.releases.rollbackRelease({ namespace: NS, name: "web", async: true });
    await until(async () =>
      (await h.operations.getOperation({ id: res.operationId })).operation?.steps.some((s) => s.name === "apply")
        ? true
        : undefined,
    );
    const err = await failure(h.operations.cancelOperation({ id: res.operationId }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(/cannot be stopped/);
    const done = await h.operations.waitOperation({ id: res.operationId });
    expect(done.operation?.state).toBe(OperationState.SUCCEEDED);
    expect(h.helm.terminated).toEqual([]);
  });

  it("cancelling an operation that ended is FAILED_PRECONDITION", async () => {
    const h = await harness();
    const res = await h.releases.installRelease({ namespace: NS, name: "web", chart: CHART });
    const err = await failure(h.operations.cancelOperation({ id: res.operationId }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(/already ended/);
  });
});

describe("operations: bad input and scope", () => {
  it("an unknown id is NOT_FOUND, a malformed one INVALID_ARGUMENT", async () => {
    const h = await harness();
    expect((await failure(h.operations.getOperation({ id: newOperationId() }))).code).toBe(Code.NotFound);
    expect((await failure(h.operations.cancelOperation({ id: newOperationId() }))).code).toBe(Code.NotFound);
    expect((await failure(h.operations.getOperation({ id: "../etc" }))).code).toBe(Code.InvalidArgument);
    expect(
      (await failure(h.operations.waitOperation({ id: newOperationId(), timeout: { seconds: 9999n, nanos: 0 } }))).code,
    ).toBe(Code.InvalidArgument);
  });

  it("another tenant's operation answers NOT_FOUND, the same as an unknown id, and is not listed", async () => {
    const other = "other-tenant-key-0123456789";
    const h = await harness({
      namedKeys: [{ id: "tenant-b", digest: sha256(other), scope: new Scope(["paas-ws-b"], ["read", "deploy"]) }],
    });
    const res = await h.releases.installRelease({ namespace: NS, name: "web", chart: CHART });
    const b = clientsWith(h, { "x-api-key": other });
    const err = await failure(b.operations.getOperation({ id: res.operationId }));
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toBe(
      (await failure(b.operations.getOperation({ id: newOperationId() }))).rawMessage.replace(
        /[0-9a-z]{26}/,
        res.operationId,
      ),
    );
    expect((await failure(b.operations.cancelOperation({ id: res.operationId }))).code).toBe(Code.NotFound);
    expect((await b.operations.listOperations({})).operations).toHaveLength(0);
    expect((await failure(b.operations.listOperations({ namespace: NS }))).code).toBe(Code.PermissionDenied);
  });
});

describe("operations: accepted means it runs", () => {
  it("a queued operation of a replica that died is adopted and run by another, once", async () => {
    const h = await harness();
    await h.releases.installRelease({ namespace: NS, name: "web", chart: CHART });
    const id = newOperationId();
    const now = new Date(Date.now() - 60_000);
    const request = JSON.stringify({ namespace: NS, name: "web", version: "7.0.0" });
    await h.audit.createOperation(
      {
        id,
        kind: "upgrade",
        method: "paas.v1.ReleaseService/UpgradeRelease",
        namespace: NS,
        release: "web",
        caller: "key-test",
        idempotencyKey: "",
        state: "queued",
        createdAt: now,
        steps: [{ name: "wait-for-release", order: 1, state: "running", detail: "", startedAt: now }],
        request,
        params: {},
        response: "",
        responseType: "paas.v1.UpgradeReleaseResponse",
        replica: "dead-replica",
        cancelRequested: false,
        updatedAt: now,
      },
      {
        id: newAuditId(),
        time: now,
        stage: "intent",
        operationId: id,
        caller: "key-test",
        sourceIp: "",
        userAgent: "",
        method: "paas.v1.ReleaseService/UpgradeRelease",
        namespace: NS,
        release: "web",
        chartReference: "",
        chartVersion: "7.0.0",
        valuesSha256: "",
        idempotencyKey: "",
        revisionBefore: 0,
        revisionAfter: 0,
        durationMs: 0,
        errorCode: "",
        errorMessage: "",
        replica: "dead-replica",
        requestId: "",
      },
    );
    expect(await h.app.engine.adopt()).toBe(1);
    const done = await h.operations.waitOperation({ id });
    expect(done.operation?.state).toBe(OperationState.SUCCEEDED);
    expect(done.operation?.replica).toBe(h.locks.replica);
    expect(h.cluster.history(NS, "web").at(-1)?.release.chartVersion).toBe("7.0.0");
    // Adopted once only: a second pass finds nothing.
    expect(await h.app.engine.adopt()).toBe(0);
    expect(h.helm.verbs().filter((v) => v === "upgrade")).toHaveLength(1);
  });

  it("closing a dead replica's intents leaves its queued operations for adoption and fails its running one, naming the step", async () => {
    const h = await harness();
    const queued = operation({ namespace: NS, release: "a", replica: "dead-replica" });
    const running = operation({ namespace: NS, release: "b", replica: "dead-replica" });
    for (const op of [queued, running]) {
      await h.audit.createOperation(
        op,
        record({ operationId: op.id, namespace: NS, release: op.release, replica: "dead-replica" }),
      );
    }
    expect(await h.audit.startOperation(running.id, "dead-replica", new Date())).toBe(true);
    await h.audit.saveProgress(
      running.id,
      [{ name: "apply", order: 1, state: "running", detail: "", startedAt: new Date() }],
      undefined,
    );
    expect(await h.app.repair.closeOrphans(() => true, undefined, "closed from the release's history")).toBe(1);
    expect((await h.audit.getOperation(queued.id))!.state).toBe("queued");
    const failed = (await h.operations.getOperation({ id: running.id })).operation;
    expect(failed?.state).toBe(OperationState.FAILED);
    expect(failed?.error?.reason).toBe("REPLICA_LOST");
    expect(failed?.error?.message).toMatch(
      /stopped before it finished; closed from the release's history; it died in step "apply"/,
    );
    expect(failed?.steps[0]?.state).toBe(StepState.FAILED);
    const outcomes = (await h.audit.list({ pageSize: 10, operationId: running.id })).records.filter(
      (r) => r.stage === "outcome",
    );
    expect(outcomes.map((r) => r.outcome)).toEqual(["recovered"]);
  });

  it("ended operations are purged after the retention; the audit log keeps its records", async () => {
    const h = await harness({ operationRetentionMs: 1 });
    const res = await h.releases.installRelease({ namespace: NS, name: "web", chart: CHART });
    await new Promise((r) => setTimeout(r, 5));
    expect(await h.app.engine.purge()).toBe(1);
    expect((await failure(h.operations.getOperation({ id: res.operationId }))).code).toBe(Code.NotFound);
    expect((await h.audit.list({ pageSize: 10, operationId: res.operationId })).records).toHaveLength(2);
  });
});
