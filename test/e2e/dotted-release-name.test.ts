import { setTimeout as sleep } from "node:timers/promises";
import * as k8s from "@kubernetes/client-node";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPaasClient, type PaasClient } from "../../clients/paas-client.ts";
import { ReleaseStatus, WatchEventKind, type WatchReleaseStatusResponse } from "../../gen/paas/v1/release_pb.js";
import { LeaseManager, leaseRecord } from "../../src/kube/leases/leases.ts";
import { decodeReleaseText, encodeReleaseData, HELM_SECRET_TYPE } from "../../src/kube/storage/helm-storage.ts";
import { failure } from "../support/failure.ts";
import { KWOK_READY_DELAY } from "../support/reliability.ts";
import {
  startServer,
  TEST_LEASE_NAMESPACE,
  testbedEnv,
  uniqueNamespace,
  type ServerProcess,
} from "../support/testbed.ts";

// A release name with a dot is a valid Helm release name (helm pkg/chartutil
// ValidateReleaseName: a DNS-1123 subdomain of at most 53 characters), so it must work
// everywhere a release name goes, not only at the front door: Helm's storage Secrets
// (sh.helm.release.v1.my-app.v2.v1) and their label selector (name=my-app.v2), the pods
// of the release, the watch, the Lease (whose name is a hash) and the repair of a stuck
// release. podinfo names its Service after the release, and a Service name may hold no dot
// (a DNS-1035 label), so the chart gets a fullnameOverride, as any chart needs for such a name.

const tb = testbedEnv();
const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
const core = kc.makeApiClient(k8s.CoreV1Api);
const coordination = kc.makeApiClient(k8s.CoordinationV1Api);
const NAME = "my-app.v2";
const VALUES = { fullnameOverride: "my-app-v2" };

/** collect reads a stream in the background until `until` says stop. */
function collect(
  stream: AsyncIterable<WatchReleaseStatusResponse>,
  until: (seen: WatchReleaseStatusResponse[]) => boolean,
) {
  const seen: WatchReleaseStatusResponse[] = [];
  const done = (async () => {
    for await (const m of stream) {
      seen.push(m);
      if (until(seen)) break;
    }
    return seen;
  })();
  return { seen, done };
}

async function poll<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}

describe.each([
  ["Helm v4", tb.HELM_BINARY],
  ["Helm v3", tb.HELM_V3_BINARY],
])(`the dotted release name "${NAME}" with %s`, (_label, helmBinary) => {
  let server: ServerProcess;
  let client: PaasClient;
  let rest: (path: string, init?: RequestInit) => Promise<Response>;
  const ns = uniqueNamespace("dots");

  /** The release's storage Secrets (Helm's own label selector), oldest revision first. */
  async function storage(): Promise<k8s.V1Secret[]> {
    const list = await core.listNamespacedSecret({ namespace: ns, labelSelector: `owner=helm,name=${NAME}` });
    return list.items.sort((a, b) => Number(a.metadata?.labels?.version) - Number(b.metadata?.labels?.version));
  }

  beforeAll(async () => {
    // No background repair during the test: the stuck release below is repaired on demand.
    server = await startServer({ HELM_BINARY: helmBinary, RECONCILE_INTERVAL: "1h" });
    client = createPaasClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, protocol: "grpc" });
    rest = (path, init) =>
      fetch(`${server.baseUrl}${path}`, {
        ...init,
        headers: { "x-api-key": server.apiKey, "content-type": "application/json", ...init?.headers },
      });
    await client.namespaces.createNamespace({ name: ns });
  });

  afterAll(async () => {
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
    await coordination
      .deleteNamespacedLease({ name: LeaseManager.leaseName(ns, NAME), namespace: TEST_LEASE_NAMESPACE })
      .catch(() => undefined);
    expect(await server.stop()).toBe(0);
  });

  it("refuses, clearly and leaving nothing behind, a chart whose Service would be named after the dotted name", async () => {
    const refused = await failure(
      client.releases.installRelease({
        namespace: ns,
        name: "web.v2",
        chart: "testbed/podinfo",
        version: "6.13.0",
        wait: true,
      }),
    );
    expect(refused.code).toBe(Code.InvalidArgument);
    expect(refused.rawMessage).toBe(
      'The install of release web.v2 creates a Service whose name Kubernetes refuses; charts derive names from the release name, and a Service name may not contain "." (set the chart\'s fullnameOverride)',
    );
    expect((await core.listNamespacedSecret({ namespace: ns, labelSelector: "owner=helm,name=web.v2" })).items).toEqual(
      [],
    );
    // The failed install was uninstalled: whatever helm applied before the refusal goes too.
    await poll(
      "no pods left",
      async () => ((await core.listNamespacedPod({ namespace: ns })).items.length === 0 ? true : undefined),
      30_000,
    );
  });

  it("installs it, streaming at least the snapshot and the release's change", async () => {
    const watch = collect(
      client.releases.watchReleaseStatus({ namespace: ns, name: NAME }),
      (seen) =>
        seen.some((m) => m.kind === WatchEventKind.RELEASE_CHANGED && m.release?.status === ReleaseStatus.DEPLOYED) &&
        seen.some((m) => m.pod?.phase === "Running" && m.pod.podReady),
    );
    await sleep(500);
    const res = await client.releases.installRelease({
      namespace: ns,
      name: NAME,
      chart: "testbed/podinfo",
      version: "6.13.0",
      values: VALUES,
      wait: true,
    });
    expect(res.release).toMatchObject({
      name: NAME,
      namespace: ns,
      revision: 1,
      status: ReleaseStatus.DEPLOYED,
      chart: "podinfo",
      chartVersion: "6.13.0",
    });
    const seen = await watch.done;
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen[0]?.kind).toBe(WatchEventKind.SNAPSHOT);
    expect(seen.some((m) => m.kind === WatchEventKind.RELEASE_CHANGED && m.release?.name === NAME)).toBe(true);
    expect(seen.some((m) => m.kind === WatchEventKind.POD_ADDED || m.kind === WatchEventKind.POD_MODIFIED)).toBe(true);

    // Helm's storage: the dotted name in the Secret's name and as its `name` label value.
    const stored = await storage();
    expect(stored.map((s) => [s.metadata?.name, s.metadata?.labels?.name, s.metadata?.labels?.status])).toEqual([
      [`sh.helm.release.v1.${NAME}.v1`, NAME, "deployed"],
    ]);
  });

  it("gets it and its status with its pods, over gRPC and REST", async () => {
    const got = await client.releases.getRelease({ namespace: ns, name: NAME });
    expect(got.release).toMatchObject({ name: NAME, revision: 1, status: ReleaseStatus.DEPLOYED, lockedBy: "" });
    const status = await client.releases.getReleaseStatus({ namespace: ns, name: NAME });
    expect(status.release?.status).toBe(ReleaseStatus.DEPLOYED);
    expect(status.pods.length).toBeGreaterThan(0);
    for (const pod of status.pods) expect(pod).toMatchObject({ phase: "Running", podReady: true });
    // podinfo labels its pods only app.kubernetes.io/name=<fullname>: they are found through
    // the Deployment's selector in the release's manifest.
    const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: "app.kubernetes.io/name=my-app-v2" });
    expect(pods.items.map((p) => p.metadata?.name).sort()).toEqual(status.pods.map((p) => p.name).sort());

    const res = await rest(`/api/releases/${ns}/${NAME}/status`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { release: { name: string; status: string }; pods: unknown[] };
    expect(body.release).toMatchObject({ name: NAME, status: "deployed" });
    expect(body.pods).toHaveLength(status.pods.length);
  });

  it("shows the Lease's holder as locked_by while an upgrade runs, and upgrades it", async () => {
    // Pods that take a while to become ready keep helm in --wait, holding the Lease.
    const upgrade = client.releases.upgradeRelease({
      namespace: ns,
      name: NAME,
      values: { ...VALUES, podAnnotations: { [KWOK_READY_DELAY]: "8s" } },
      wait: true,
    });
    const running = await poll(
      "the upgrade to be pending and locked",
      async () => {
        const r = (await client.releases.getRelease({ namespace: ns, name: NAME })).release;
        return r?.status === ReleaseStatus.PENDING_UPGRADE && r.lockedBy !== "" ? r : undefined;
      },
      30_000,
    );
    expect(running.revision).toBe(2);
    const lease = await coordination.readNamespacedLease({
      name: LeaseManager.leaseName(ns, NAME),
      namespace: TEST_LEASE_NAMESPACE,
    });
    expect(lease.metadata?.name).toMatch(/^paas-op-[0-9a-f]{40}$/);
    expect(lease.metadata?.annotations).toMatchObject({ "paas.io/namespace": ns, "paas.io/release": NAME });
    expect(leaseRecord(lease).holder).toBe(running.lockedBy);

    const done = await upgrade;
    expect(done.release).toMatchObject({ name: NAME, revision: 2, status: ReleaseStatus.DEPLOYED });
    expect(done.release?.values).toMatchObject({ podAnnotations: { [KWOK_READY_DELAY]: "8s" } });
    expect((await client.releases.getRelease({ namespace: ns, name: NAME })).release?.lockedBy).toBe("");
    const history = await client.releases.listReleaseRevisions({ namespace: ns, name: NAME });
    expect(history.revisions.map((r) => [r.revision, r.status])).toEqual([
      [1, ReleaseStatus.SUPERSEDED],
      [2, ReleaseStatus.DEPLOYED],
    ]);
  });

  it("repairs it when it is left pending, and upgrades it afterwards", async () => {
    // What a helm killed in the middle of an upgrade leaves behind: a newer revision stored
    // as pending-upgrade, no Lease. It is written here directly (helm is never killed).
    const [, deployed] = await storage();
    const json = JSON.parse(await decodeReleaseText(deployed!.data!.release!)) as Record<string, any>;
    const since = new Date(Date.now() - 60_000);
    json.version = 3;
    json.info = {
      ...json.info,
      status: "pending-upgrade",
      description: "Preparing upgrade",
      last_deployed: since.toISOString(),
    };
    await core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: {
          name: `sh.helm.release.v1.${NAME}.v3`,
          labels: { ...deployed!.metadata!.labels, status: "pending-upgrade", version: "3" },
        },
        type: HELM_SECRET_TYPE,
        data: { release: await encodeReleaseData(JSON.stringify(json)) },
      },
    });

    const pending = await client.releases.getRelease({ namespace: ns, name: NAME });
    expect(pending.release).toMatchObject({ revision: 3, status: ReleaseStatus.PENDING_UPGRADE, lockedBy: "" });
    expect(Number(pending.release?.pendingSince?.seconds) * 1000).toBe(Math.floor(since.getTime() / 1000) * 1000);

    const recovered = await client.releases.recoverRelease({ namespace: ns, name: NAME });
    expect(recovered.recovered).toBe(true);
    expect(recovered.release).toMatchObject({ name: NAME, revision: 3, status: ReleaseStatus.FAILED });
    expect((await storage()).map((s) => [s.metadata?.name, s.metadata?.labels?.status])).toEqual([
      [`sh.helm.release.v1.${NAME}.v1`, "superseded"],
      [`sh.helm.release.v1.${NAME}.v2`, "deployed"],
      [`sh.helm.release.v1.${NAME}.v3`, "failed"],
    ]);
    // Nothing left to repair.
    expect((await client.releases.recoverRelease({ namespace: ns, name: NAME })).recovered).toBe(false);

    // Real helm accepts the repaired release: the next upgrade goes through.
    const next = await client.releases.upgradeRelease({ namespace: ns, name: NAME, values: VALUES, wait: true });
    expect(next.release).toMatchObject({ name: NAME, revision: 4, status: ReleaseStatus.DEPLOYED });
    const history = await client.releases.listReleaseRevisions({ namespace: ns, name: NAME });
    expect(history.revisions.map((r) => [r.revision, r.status])).toEqual([
      [1, ReleaseStatus.SUPERSEDED],
      [2, ReleaseStatus.SUPERSEDED],
      [3, ReleaseStatus.FAILED],
      [4, ReleaseStatus.DEPLOYED],
    ]);
  });
});
