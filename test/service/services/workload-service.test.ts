import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { OperationState, StepState } from "../../../gen/paas/v1/operation_pb.js";
import { WorkloadKind, WorkloadService } from "../../../gen/paas/v1/workload_pb.js";
import { FakeWorkloads } from "../../support/fake-workloads.ts";
import { API_KEY, createHarness, managedNamespace } from "../../support/harness.ts";

// WorkloadService on the real request path (interceptors, engine, SQLite audit) over a fake
// WorkloadClient: preconditions, limits, dry runs, the PVC refusal and the runbook's steps.

const NS = "paas-ws-a";
const D = WorkloadKind.DEPLOYMENT;
const READER = "reader-a-0123456789abcdef";
const DEPLOYER = "deployer-a-0123456789abcdef";
const OPERATOR = "operator-a-0123456789abcdef";

async function setup() {
  const fake = new FakeWorkloads();
  const keysFile = join(mkdtempSync(join(tmpdir(), "workloads-")), "keys.json");
  writeFileSync(
    keysFile,
    JSON.stringify({
      keys: [
        { id: "reader", key: READER, namespaces: [NS], verbs: ["read"] },
        { id: "deployer", key: DEPLOYER, namespaces: [NS], verbs: ["read", "deploy", "delete"] },
        { id: "operator", key: OPERATOR, namespaces: [NS], verbs: ["read", "operate"] },
      ],
    }),
  );
  const h = await createHarness({ workloads: fake, workloadPollMs: 2, workloadMaxReplicas: 10, apiKeysFile: keysFile });
  managedNamespace(h.cluster, NS);
  const client = (key = API_KEY) => createClient(WorkloadService, transportOf(h, key));
  return { h, fake, wl: client(), client };
}

function transportOf(h: Awaited<ReturnType<typeof createHarness>>, key: string) {
  return createRouterTransport(h.app.routes, {
    router: { interceptors: h.app.interceptors },
    transport: {
      interceptors: [
        (next) => (req) => {
          req.header.set("x-api-key", key);
          return next(req);
        },
      ],
    },
  });
}

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected a failure");
}

describe("WorkloadService", () => {
  it("scales with expected_replicas, refuses a wrong one, the maximum and the quota, and changes nothing on a dry run", async () => {
    const { fake, wl } = await setup();
    fake.add(NS, "Deployment", "web", 1, { helmRelease: "web" });
    const up = await wl.scaleWorkload({
      namespace: NS,
      kind: D,
      name: "web",
      replicas: 3,
      expectedReplicas: 1,
      wait: true,
    });
    expect(up.previousReplicas).toBe(1);
    expect(up.workload?.readyReplicas).toBe(3);
    expect(up.warning).toMatch(/Helm release web/);
    const wrong = await failure(
      wl.scaleWorkload({ namespace: NS, kind: D, name: "web", replicas: 1, expectedReplicas: 1 }),
    );
    expect(wrong.code).toBe(Code.FailedPrecondition);
    expect((await failure(wl.scaleWorkload({ namespace: NS, kind: D, name: "web", replicas: 11 }))).code).toBe(
      Code.InvalidArgument,
    );
    expect((await failure(wl.scaleWorkload({ namespace: NS, kind: D, name: "web", replicas: -1 }))).code).toBe(
      Code.InvalidArgument,
    );
    expect(
      (await failure(wl.scaleWorkload({ namespace: NS, kind: WorkloadKind.DAEMONSET, name: "web", replicas: 1 }))).code,
    ).toBe(Code.InvalidArgument);
    // 0.5 CPU per pod, 2 CPUs of quota (none used in the fake): 3 → 7 fits, 3 → 8 does not.
    fake.workloads.get(`${NS}/Deployment/web`)!.info.perPod["limits.cpu"] = 0.5;
    const quota = await failure(wl.scaleWorkload({ namespace: NS, kind: D, name: "web", replicas: 8 }));
    expect(quota.code).toBe(Code.ResourceExhausted);
    expect(quota.rawMessage).toMatch(/exceeded quota: .*to 8 needs limits\.cpu=2500m.*limited: 2/);
    const dry = await wl.scaleWorkload({ namespace: NS, kind: D, name: "web", replicas: 4, dryRun: true });
    expect(dry.dryRun).toBe(true);
    expect(fake.calls).toEqual(["scale Deployment web 3", "scale Deployment web 4 dry"]);
    expect((await wl.listWorkloads({ namespace: NS })).workloads[0]?.desiredReplicas).toBe(3);
    expect((await failure(wl.scaleWorkload({ namespace: NS, kind: D, name: "nope", replicas: 1 }))).code).toBe(
      Code.NotFound,
    );
  });

  it("is refused outside managed namespaces and without the operate verb, before anything runs", async () => {
    const { fake, client, h } = await setup();
    fake.add(NS, "Deployment", "web", 1);
    fake.add("paas-ws-b", "Deployment", "web", 1);
    const req = (namespace: string) => ({ namespace, kind: D, name: "web", replicas: 2 });
    expect((await failure(client().scaleWorkload(req("kube-system")))).code).toBe(Code.PermissionDenied);
    expect((await failure(client().scaleWorkload(req("paas-ws-b")))).code).toBe(Code.NotFound);
    expect((await failure(client(READER).scaleWorkload(req(NS)))).code).toBe(Code.PermissionDenied);
    expect((await failure(client(DEPLOYER).deletePod({ namespace: NS, name: "x" }))).code).toBe(Code.PermissionDenied);
    expect((await failure(client(OPERATOR).scaleWorkload(req("paas-ws-b")))).code).toBe(Code.PermissionDenied);
    expect(fake.calls).toEqual([]);
    expect((await client(READER).listWorkloads({ namespace: NS })).workloads).toHaveLength(1);
    await client(OPERATOR).scaleWorkload(req(NS));
    expect(fake.calls).toEqual(["scale Deployment web 2"]);
    h.app.keys.close();
  });

  it("restarts (paused → FAILED_PRECONDITION) and deletes a pod", async () => {
    const { fake, wl } = await setup();
    fake.add(NS, "Deployment", "web", 1);
    fake.add(NS, "Deployment", "held", 1, { paused: true });
    fake.add(NS, "StatefulSet", "db", 1);
    const r = await wl.restartWorkload({ namespace: NS, kind: D, name: "web", wait: true });
    expect(fake.workloads.get(`${NS}/Deployment/web`)!.info.restartedAt).toBe(r.restartedAt);
    const paused = await failure(wl.restartWorkload({ namespace: NS, kind: D, name: "held" }));
    expect(paused.code).toBe(Code.FailedPrecondition);
    expect(paused.rawMessage).toMatch(/paused/);
    await wl.deletePod({ namespace: NS, name: "db-0", gracePeriodSeconds: 0n });
    const dry = await wl.restartWorkload({ namespace: NS, kind: D, name: "web", dryRun: true });
    expect(dry.message).toBe("Deployment web would be restarted");
    expect(fake.workloads.get(`${NS}/Deployment/web`)!.info.restartedAt).toBe(r.restartedAt);
    await wl.deletePod({ namespace: NS, name: "db-0", dryRun: true });
    expect(fake.calls).toEqual([
      "restart Deployment web",
      "delete pod db-0 grace=0",
      "restart Deployment web dry",
      "delete pod db-0 dry",
    ]);
    expect((await failure(wl.deletePod({ namespace: NS, name: "db-9" }))).code).toBe(Code.NotFound);
    expect((await failure(wl.deletePod({ namespace: NS, name: "db-0", gracePeriodSeconds: -1n }))).code).toBe(
      Code.InvalidArgument,
    );
  });

  it("refuses a mounted claim unless force, and says when its finalizer holds it", async () => {
    const { fake, wl } = await setup();
    fake.claim(NS, "data", ["db-0"]);
    fake.claim(NS, "free");
    const refused = await failure(wl.deletePersistentVolumeClaim({ namespace: NS, name: "data" }));
    expect(refused.code).toBe(Code.FailedPrecondition);
    expect(refused.rawMessage).toMatch(/mounted by running pod\(s\) db-0/);
    expect(fake.calls).toEqual([]);
    // A forced delete waits up to 5 s for the claim to go before reporting the finalizer.
    const forced = await wl.deletePersistentVolumeClaim({ namespace: NS, name: "data", force: true });
    expect(forced.deleted).toBe(false);
    expect(forced.heldByFinalizer).toBe(true);
    expect(forced.message).toMatch(/held by its kubernetes.io\/pvc-protection finalizer/);
    const free = await wl.deletePersistentVolumeClaim({ namespace: NS, name: "free" });
    expect(free.deleted).toBe(true);
    expect(fake.claims.has(`${NS}/free`)).toBe(false);
  }, 20_000);

  it("rebuilds a member in six steps, and stops naming the step when someone scales the set back", async () => {
    const { fake, wl, h } = await setup();
    fake.add(NS, "StatefulSet", "db", 2, { claimTemplates: ["data"] });
    const before = { 0: fake.claims.get(`${NS}/data-db-0`)!.uid, 1: fake.claims.get(`${NS}/data-db-1`)!.uid };
    const res = await wl.rebuildStatefulSetMember({ namespace: NS, statefulset: "db", ordinal: 1, targetReplicas: 2 });
    expect(res.claims).toEqual(["data-db-1"]);
    expect(fake.claims.get(`${NS}/data-db-1`)!.uid).not.toBe(before[1]);
    expect(fake.claims.get(`${NS}/data-db-0`)!.uid).toBe(before[0]);
    const op = (await h.operations.getOperation({ id: res.operationId })).operation!;
    expect(op.steps.map((s) => s.name)).toEqual([
      "wait-for-release",
      "scale-to-zero",
      "wait-pods-gone",
      "delete-pvcs",
      "wait-pvcs-gone",
      "scale-up",
      "wait-ready",
      "record",
    ]);

    // Someone scales it back while the claims are awaited (a finalizer holds data-db-1).
    fake.claims.get(`${NS}/data-db-1`)!.finalizers.push("test/hold");
    fake.onPoll = (what) => {
      if (what === "getClaim data-db-1" && fake.claims.get(`${NS}/data-db-1`)?.terminating) {
        fake.onPoll = undefined;
        fake.scaleBehind(NS, "StatefulSet", "db", 2);
      }
    };
    const err = await failure(
      wl.rebuildStatefulSetMember({ namespace: NS, statefulset: "db", ordinal: 1, targetReplicas: 2 }),
    );
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(/scaled to 2 by someone else during wait-pvcs-gone/);
    const { operations } = await h.operations.listOperations({ namespace: NS });
    const failed = operations.find((o) => o.state === OperationState.FAILED)!;
    expect(failed.steps.find((s) => s.name === "wait-pvcs-gone")?.state).toBe(StepState.FAILED);
    expect(failed.steps.some((s) => s.name === "scale-up")).toBe(false);

    // The rerun, once the hold is gone, succeeds.
    const c = fake.claims.get(`${NS}/data-db-1`)!;
    c.finalizers = c.finalizers.filter((f) => f !== "test/hold");
    const rerun = await wl.rebuildStatefulSetMember({
      namespace: NS,
      statefulset: "db",
      ordinal: 1,
      targetReplicas: 2,
    });
    expect(rerun.workload?.readyReplicas).toBe(2);
    expect(fake.claims.get(`${NS}/data-db-0`)!.uid).toBe(before[0]);
    expect(
      (await failure(wl.rebuildStatefulSetMember({ namespace: NS, statefulset: "db", ordinal: 2, targetReplicas: 2 })))
        .code,
    ).toBe(Code.InvalidArgument);
  }, 20_000);
});
