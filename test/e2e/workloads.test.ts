import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import * as k8s from "@kubernetes/client-node";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPaasClient, type PaasClient } from "../../clients/paas-client.ts";
import { OperationState, StepState } from "../../gen/paas/v1/operation_pb.js";
import { WorkloadKind } from "../../gen/paas/v1/workload_pb.js";
import { LocalVolumes } from "../support/local-volumes.ts";
import { allAuditEvents, core, deleteNamespace, waitFor } from "../support/reliability.ts";
import {
  startServer,
  testbedEnv,
  TEST_LEASE_NAMESPACE,
  uniqueNamespace,
  type ServerProcess,
} from "../support/testbed.ts";

// WorkloadService on the real cluster: scale (scale subresource, expected_replicas, the quota,
// dry run), restart, delete a pod, delete a claim (refused while mounted), the StatefulSet
// rebuild runbook on claims bound by the real PV controller to static PersistentVolumes, a
// failure injected mid-runbook and its rerun, and tenant safety (nothing changes when refused).

const tb = testbedEnv();
const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
const apps = kc.makeApiClient(k8s.AppsV1Api);

const D = WorkloadKind.DEPLOYMENT;
const S = WorkloadKind.STATEFULSET;
const tag = randomBytes(3).toString("hex");
const local = new LocalVolumes(kc, tag, 6);
const PVS = local.volumes;

async function codeOf(p: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
  throw new Error("expected the call to fail");
}

const replicasOf = async (ns: string, name: string) =>
  (await apps.readNamespacedDeployment({ name, namespace: ns })).spec?.replicas;
const stsReplicas = async (ns: string, name: string) =>
  (await apps.readNamespacedStatefulSet({ name, namespace: ns })).spec?.replicas;
const claimUid = async (ns: string, name: string) =>
  (await core.readNamespacedPersistentVolumeClaim({ name, namespace: ns }).catch(() => undefined))?.metadata?.uid;

describe("WorkloadService on the testbed", () => {
  let server: ServerProcess;
  let paas: PaasClient;
  let readOnly: PaasClient;
  let deployOnly: PaasClient;
  let otherScoped: PaasClient;
  const ns = uniqueNamespace("wl");
  const other = uniqueNamespace("wl-other");
  const unmanaged = uniqueNamespace("wl-unmanaged");
  const keys = {
    read: `ro-${randomBytes(16).toString("hex")}`,
    deploy: `dep-${randomBytes(16).toString("hex")}`,
    other: `oth-${randomBytes(16).toString("hex")}`,
  };

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "paas-wl-"));
    const keysFile = join(dir, "keys.json");
    writeFileSync(
      keysFile,
      JSON.stringify({
        keys: [
          { id: "read-only", key: keys.read, namespaces: ["*"], verbs: ["read"] },
          { id: "deploy-only", key: keys.deploy, namespaces: ["*"], verbs: ["read", "deploy", "delete"] },
          { id: "other-tenant", key: keys.other, namespaces: [other], verbs: ["*"] },
        ],
      }),
    );
    server = await startServer({ API_KEYS_FILE: keysFile, HELM_TIMEOUT: "90" });
    paas = createPaasClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, protocol: "grpc" });
    readOnly = createPaasClient({ baseUrl: server.baseUrl, apiKey: keys.read });
    deployOnly = createPaasClient({ baseUrl: server.baseUrl, apiKey: keys.deploy });
    otherScoped = createPaasClient({ baseUrl: server.baseUrl, apiKey: keys.other });
    await paas.namespaces.createNamespace({ name: ns, podSecurity: "baseline" });
    await paas.namespaces.createNamespace({ name: other, podSecurity: "baseline" });
    await core.createNamespace({ body: { metadata: { name: unmanaged } } });
    await local.create();
  }, 120_000);

  afterAll(async () => {
    await Promise.all([deleteNamespace(ns), deleteNamespace(other), deleteNamespace(unmanaged)]);
    await local.destroy();
    expect(await server?.stop()).toBe(0);
  });

  it("scales a Helm-owned Deployment 1 → 3 → 0 → 2 with expected_replicas, refuses a wrong one, the quota and the maximum", async () => {
    await paas.releases.installRelease({
      namespace: ns,
      name: "web",
      chart: "testbed/podinfo",
      version: "6.13.0",
      values: { replicaCount: 1 },
      wait: true,
    });
    const listed = await paas.workloads.listWorkloads({ namespace: ns, release: "web" });
    expect(listed.workloads.map((w) => [w.kind, w.name, w.desiredReplicas, w.helmRelease])).toEqual([
      [D, "web-podinfo", 1, "web"],
    ]);

    const up = await paas.workloads.scaleWorkload({
      namespace: ns,
      kind: D,
      name: "web-podinfo",
      replicas: 3,
      expectedReplicas: 1,
      wait: true,
    });
    expect(up.previousReplicas).toBe(1);
    expect(up.workload?.readyReplicas).toBe(3);
    expect(up.warning).toMatch(/Helm release web: its next upgrade sets replicas back/);
    expect(up.operationId).not.toBe("");
    expect(await replicasOf(ns, "web-podinfo")).toBe(3);

    const zero = await paas.workloads.scaleWorkload({
      namespace: ns,
      kind: D,
      name: "web-podinfo",
      replicas: 0,
      expectedReplicas: 3,
      wait: true,
    });
    expect(zero.workload?.desiredReplicas).toBe(0);
    const two = await paas.workloads.scaleWorkload({
      namespace: ns,
      kind: D,
      name: "web-podinfo",
      replicas: 2,
      expectedReplicas: 0,
      wait: true,
    });
    expect(two.workload?.readyReplicas).toBe(2);

    const wrong = await codeOf(
      paas.workloads.scaleWorkload({ namespace: ns, kind: D, name: "web-podinfo", replicas: 5, expectedReplicas: 3 }),
    );
    expect(wrong.code).toBe(Code.FailedPrecondition);
    expect(wrong.message).toMatch(/has 2 replicas, not the expected 3/);
    expect(await replicasOf(ns, "web-podinfo")).toBe(2);

    // podinfo declares no limits: each pod gets the LimitRange's 500m / 512Mi, the quota has 2 / 4Gi.
    const quota = await codeOf(
      paas.workloads.scaleWorkload({ namespace: ns, kind: D, name: "web-podinfo", replicas: 12 }),
    );
    expect(quota.code).toBe(Code.ResourceExhausted);
    expect(quota.message).toMatch(
      /exceeded quota: scaling Deployment web-podinfo to 12 needs limits\.cpu=6000m .*limited: 2/,
    );
    expect(await replicasOf(ns, "web-podinfo")).toBe(2);

    const tooMany = await codeOf(
      paas.workloads.scaleWorkload({ namespace: ns, kind: D, name: "web-podinfo", replicas: 21 }),
    );
    expect(tooMany.code).toBe(Code.InvalidArgument);

    const dry = await paas.workloads.scaleWorkload({
      namespace: ns,
      kind: D,
      name: "web-podinfo",
      replicas: 4,
      dryRun: true,
    });
    expect(dry.dryRun).toBe(true);
    expect(dry.message).toMatch(/would be scaled from 2 to 4/);
    expect(await replicasOf(ns, "web-podinfo")).toBe(2);

    // The scales are in the audit log with their parameters and the owning release.
    const events = await allAuditEvents(paas.audit, ns, 100);
    const scales = events.filter((e) => e.method.endsWith("/ScaleWorkload"));
    expect(scales.length).toBeGreaterThanOrEqual(10);
  }, 240_000);

  it("restarts a Deployment (annotation, new ReplicaSet, pods replaced) and deletes a pod (replaced)", async () => {
    const podsBefore = (
      await core.listNamespacedPod({ namespace: ns, labelSelector: "app.kubernetes.io/name=web-podinfo" })
    ).items
      .map((p) => p.metadata!.name!)
      .sort();
    expect(podsBefore.length).toBe(2);
    const res = await paas.workloads.restartWorkload({ namespace: ns, kind: D, name: "web-podinfo", wait: true });
    expect(res.restartedAt).not.toBe("");
    const d = await apps.readNamespacedDeployment({ name: "web-podinfo", namespace: ns });
    expect(d.spec?.template.metadata?.annotations?.["kubectl.kubernetes.io/restartedAt"]).toBe(res.restartedAt);
    const rs = await apps.listNamespacedReplicaSet({ namespace: ns });
    expect(rs.items.filter((r) => r.metadata?.ownerReferences?.[0]?.name === "web-podinfo").length).toBe(2);
    const podsAfter = await waitFor(
      "the old pods gone",
      async () => {
        const names = (
          await core.listNamespacedPod({ namespace: ns, labelSelector: "app.kubernetes.io/name=web-podinfo" })
        ).items
          .filter((p) => !p.metadata?.deletionTimestamp)
          .map((p) => p.metadata!.name!);
        return names.length === 2 && names.every((n) => !podsBefore.includes(n)) ? names : undefined;
      },
      60_000,
    );

    const victim = podsAfter[0]!;
    const del = await paas.workloads.deletePod({ namespace: ns, name: victim, gracePeriodSeconds: 0n });
    expect(del.message).toBe(`Pod ${victim} deleted`);
    await waitFor(
      "a replacement pod",
      async () => {
        const names = (
          await core.listNamespacedPod({ namespace: ns, labelSelector: "app.kubernetes.io/name=web-podinfo" })
        ).items
          .filter((p) => !p.metadata?.deletionTimestamp && p.status?.phase === "Running")
          .map((p) => p.metadata!.name!);
        return names.length === 2 && !names.includes(victim) ? names : undefined;
      },
      60_000,
    );
    expect((await codeOf(paas.workloads.deletePod({ namespace: ns, name: "no-such-pod" }))).code).toBe(Code.NotFound);

    // A paused Deployment is not restarted.
    await apps.patchNamespacedDeployment(
      { name: "web-podinfo", namespace: ns, body: { spec: { paused: true } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    const paused = await codeOf(paas.workloads.restartWorkload({ namespace: ns, kind: D, name: "web-podinfo" }));
    expect(paused.code).toBe(Code.FailedPrecondition);
    expect(paused.message).toMatch(/paused/);
  }, 180_000);

  it("a StatefulSet on bound PVs: scale with expected_replicas, PVC refused while mounted, deleted when not", async () => {
    await apps.createNamespacedStatefulSet({ namespace: ns, body: local.statefulSet("db", 2) });
    await waitFor(
      "db ready",
      async () =>
        (await apps.readNamespacedStatefulSet({ name: "db", namespace: ns })).status?.readyReplicas === 2
          ? true
          : undefined,
      90_000,
    );
    const pvc0 = await core.readNamespacedPersistentVolumeClaim({ name: "data-db-0", namespace: ns });
    expect(pvc0.status?.phase).toBe("Bound");
    expect(PVS).toContain(pvc0.spec?.volumeName);

    const wrong = await codeOf(
      paas.workloads.scaleWorkload({ namespace: ns, kind: S, name: "db", replicas: 3, expectedReplicas: 1 }),
    );
    expect(wrong.code).toBe(Code.FailedPrecondition);
    const three = await paas.workloads.scaleWorkload({
      namespace: ns,
      kind: S,
      name: "db",
      replicas: 3,
      expectedReplicas: 2,
      wait: true,
    });
    expect(three.workload?.readyReplicas).toBe(3);
    expect(three.warning).toBe("");
    await paas.workloads.scaleWorkload({
      namespace: ns,
      kind: S,
      name: "db",
      replicas: 2,
      expectedReplicas: 3,
      wait: true,
    });

    const refused = await codeOf(paas.workloads.deletePersistentVolumeClaim({ namespace: ns, name: "data-db-0" }));
    expect(refused.code).toBe(Code.FailedPrecondition);
    expect(refused.message).toMatch(/mounted by running pod\(s\) db-0/);
    expect(await claimUid(ns, "data-db-0")).toBe(pvc0.metadata?.uid);

    const dry = await paas.workloads.deletePersistentVolumeClaim({ namespace: ns, name: "data-db-2", dryRun: true });
    expect(dry.dryRun).toBe(true);
    expect(await claimUid(ns, "data-db-2")).toBeDefined();
    const gone = await paas.workloads.deletePersistentVolumeClaim({ namespace: ns, name: "data-db-2" });
    expect(gone.deleted).toBe(true);
    expect(await claimUid(ns, "data-db-2")).toBeUndefined();
  }, 240_000);

  it("rebuilds a member: new claim for the ordinal, others untouched, steps in order; a failure mid-runbook names its step and a rerun succeeds", async () => {
    const before = { 0: await claimUid(ns, "data-db-0"), 1: await claimUid(ns, "data-db-1") };
    expect(before[0] && before[1]).toBeTruthy();
    const res = await paas.workloads.rebuildStatefulSetMember({
      namespace: ns,
      statefulset: "db",
      ordinal: 1,
      targetReplicas: 2,
    });
    expect(res.claims).toEqual(["data-db-1"]);
    expect(res.workload?.readyReplicas).toBe(2);
    const after1 = await claimUid(ns, "data-db-1");
    expect(after1).toBeDefined();
    expect(after1).not.toBe(before[1]);
    expect(await claimUid(ns, "data-db-0")).toBe(before[0]);
    const { operation } = await paas.operations.getOperation({ id: res.operationId });
    const steps = operation!.steps;
    expect(steps.map((s) => s.name)).toEqual([
      "wait-for-release",
      "scale-to-zero",
      "wait-pods-gone",
      "delete-pvcs",
      "wait-pvcs-gone",
      "scale-up",
      "wait-ready",
      "record",
    ]);
    for (const s of steps) {
      expect(s.state).toBe(StepState.SUCCEEDED);
      expect(s.startedAt && s.finishedAt).toBeTruthy();
    }

    // Failure: a finalizer of the test holds the claim in wait-pvcs-gone while someone scales the set back.
    await core.patchNamespacedPersistentVolumeClaim(
      {
        name: "data-db-1",
        namespace: ns,
        body: { metadata: { finalizers: ["kubernetes.io/pvc-protection", "paas.io/e2e-hold"] } },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    const started = await paas.workloads.rebuildStatefulSetMember({
      namespace: ns,
      statefulset: "db",
      ordinal: 1,
      targetReplicas: 2,
      async: true,
    });
    const id = started.operationId;
    await waitFor(
      "the runbook in wait-pvcs-gone",
      async () => {
        const op = (await paas.operations.getOperation({ id })).operation!;
        return op.steps.some((s) => s.name === "wait-pvcs-gone" && s.state === StepState.RUNNING) ? true : undefined;
      },
      60_000,
    );
    await apps.patchNamespacedStatefulSetScale(
      { name: "db", namespace: ns, body: { spec: { replicas: 2 } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    const failed = await waitFor(
      "the runbook failed",
      async () => {
        const op = (await paas.operations.getOperation({ id })).operation!;
        return op.state === OperationState.FAILED ? op : undefined;
      },
      60_000,
    );
    expect(failed.error?.message).toMatch(/scaled to 2 by someone else during wait-pvcs-gone/);
    expect(failed.steps.find((s) => s.name === "wait-pvcs-gone")?.state).toBe(StepState.FAILED);
    expect(failed.steps.some((s) => s.name === "scale-up")).toBe(false);

    // The claim is Terminating and the recreated pod db-1 may hold it (the pvc-protection race):
    // the rerun must scale to zero again before the claim can go.
    const held = await core.readNamespacedPersistentVolumeClaim({ name: "data-db-1", namespace: ns });
    expect(held.metadata?.deletionTimestamp).toBeDefined();
    await core.patchNamespacedPersistentVolumeClaim(
      {
        name: "data-db-1",
        namespace: ns,
        body: { metadata: { finalizers: (held.metadata?.finalizers ?? []).filter((f) => f !== "paas.io/e2e-hold") } },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    const rerun = await paas.workloads.rebuildStatefulSetMember({
      namespace: ns,
      statefulset: "db",
      ordinal: 1,
      targetReplicas: 2,
    });
    expect(rerun.workload?.readyReplicas).toBe(2);
    const after2 = await claimUid(ns, "data-db-1");
    expect(after2).toBeDefined();
    expect(after2).not.toBe(after1);
    expect(await claimUid(ns, "data-db-0")).toBe(before[0]);
    expect(await stsReplicas(ns, "db")).toBe(2);
  }, 300_000);

  it("refuses kube-system, the operator's namespace, an unmanaged one, another tenant's, read-only and deploy-only keys; nothing changes", async () => {
    await apps.createNamespacedDeployment({
      namespace: other,
      body: {
        metadata: { name: "app" },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: "app" } },
          template: {
            metadata: { labels: { app: "app" } },
            spec: { containers: [{ name: "c", image: "registry.k8s.io/pause:3.10" }] },
          },
        },
      },
    });
    await apps.createNamespacedDeployment({
      namespace: unmanaged,
      body: {
        metadata: { name: "app" },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: "app" } },
          template: {
            metadata: { labels: { app: "app" } },
            spec: { containers: [{ name: "c", image: "registry.k8s.io/pause:3.10" }] },
          },
        },
      },
    });
    const scale = (c: PaasClient, namespace: string) =>
      c.workloads.scaleWorkload({ namespace, kind: D, name: "app", replicas: 3 });
    expect((await codeOf(scale(paas, "kube-system"))).code).toBe(Code.PermissionDenied);
    expect((await codeOf(scale(paas, TEST_LEASE_NAMESPACE))).code).toBe(Code.PermissionDenied);
    expect((await codeOf(scale(paas, unmanaged))).code).toBe(Code.NotFound);
    expect((await codeOf(scale(otherScoped, ns))).code).toBe(Code.PermissionDenied);
    expect((await codeOf(scale(readOnly, other))).code).toBe(Code.PermissionDenied);
    expect((await codeOf(scale(deployOnly, other))).code).toBe(Code.PermissionDenied);
    expect((await codeOf(deployOnly.workloads.deletePod({ namespace: ns, name: "db-0" }))).code).toBe(
      Code.PermissionDenied,
    );
    expect(
      (await codeOf(readOnly.workloads.deletePersistentVolumeClaim({ namespace: ns, name: "data-db-0" }))).code,
    ).toBe(Code.PermissionDenied);
    expect(
      (
        await codeOf(
          readOnly.workloads.rebuildStatefulSetMember({
            namespace: ns,
            statefulset: "db",
            ordinal: 0,
            targetReplicas: 2,
          }),
        )
      ).code,
    ).toBe(Code.PermissionDenied);
    expect(await replicasOf(other, "app")).toBe(1);
    expect(await replicasOf(unmanaged, "app")).toBe(1);
    expect(await stsReplicas(ns, "db")).toBe(2);
    expect(await claimUid(ns, "data-db-0")).toBeDefined();
    expect((await core.readNamespacedPod({ name: "db-0", namespace: ns })).metadata?.deletionTimestamp).toBeUndefined();
    // The read-only key may list; the other tenant's key does it in its own namespace.
    expect((await readOnly.workloads.listWorkloads({ namespace: ns })).workloads.map((w) => w.name)).toEqual([
      "web-podinfo",
      "db",
    ]);
    const own = await otherScoped.workloads.scaleWorkload({
      namespace: other,
      kind: D,
      name: "app",
      replicas: 2,
      expectedReplicas: 1,
    });
    expect(own.workload?.desiredReplicas).toBe(2);
  }, 120_000);
});
