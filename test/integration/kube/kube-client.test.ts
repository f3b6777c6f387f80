import { randomBytes } from "node:crypto";
import { ApiException, CoreV1Api, KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { execa } from "execa";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKubeClient } from "../../../src/kube/kube-client.ts";
import { kubeError } from "../../../src/kube/api/api-errors.ts";
import type { KubeClient, PodInfo, ReleaseWatchEvent } from "../../../src/kube/kube-types.ts";

// KubeClient against the real testbed cluster (kube-apiserver + controller-manager +
// scheduler, kwok nodes). Needs KUBECONFIG, HELM_BINARY and CHART_REPO_URL from
// .testbed/env; without them every test fails with a pointer to the fix.

const need = ["KUBECONFIG", "HELM_BINARY", "CHART_REPO_URL"] as const;
const missing = need.filter((n) => !process.env[n]);
const SETUP_HINT = `testbed variables missing: ${missing.join(", ")}. Run 'npm run testbed:up' and 'set -a; source .testbed/env; set +a'.`;

const logger = pino({ level: process.env.LOG_LEVEL ?? "silent" });
const MANAGED_KEY = "app.kubernetes.io/managed-by";
const run = randomBytes(3).toString("hex");
const nsName = (tag: string) => `paas-ws-it-${run}-${tag}`;
const created = new Set<string>();

let kube: KubeClient;
let core: CoreV1Api;

beforeAll(() => {
  if (missing.length > 0) throw new Error(SETUP_HINT);
  // Baseline Pod Security: the bare test pods and podinfo (default values) set no securityContext.
  kube = createKubeClient({ logger, podSecurity: "baseline" });
  const kc = new KubeConfig();
  kc.loadFromDefault();
  core = kc.makeApiClient(CoreV1Api);
});

afterAll(async () => {
  if (!core) return;
  await Promise.all(
    [...created].map((name) =>
      core.deleteNamespace({ name }).catch((err: unknown) => {
        // Gone already, or already being deleted.
        if (!(err instanceof ApiException && (err.code === 404 || err.code === 409))) throw err;
      }),
    ),
  );
});

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function smallPod(name: string, cpu: string, memory: string): V1Pod {
  return {
    metadata: { name },
    spec: {
      containers: [
        {
          name: "c",
          image: "registry.invalid/none:1",
          resources: { requests: { cpu, memory }, limits: { cpu, memory } },
        },
      ],
    },
  };
}

describe("namespaces", () => {
  const ns = nsName("quota");

  it("answers ping", async () => {
    await kube.ping();
  });

  it("creates a managed namespace with its quota", async () => {
    created.add(ns);
    const res = await kube.ensureNamespace(ns, { cpu: "1", memory: "1Gi", storage: "5Gi" });
    expect(res.created).toBe(true);
    expect(res.namespace.name).toBe(ns);
    expect(res.namespace.quota).toContainEqual(expect.objectContaining({ resource: "limits.cpu", hard: "1" }));

    const raw = await core.readNamespace({ name: ns });
    expect(raw.metadata?.labels?.[MANAGED_KEY]).toBe("paas-operator");
    const rq = await core.readNamespacedResourceQuota({ name: "paas-quota", namespace: ns });
    expect(rq.spec?.hard).toEqual({
      "requests.cpu": "1",
      "limits.cpu": "1",
      "requests.memory": "1Gi",
      "limits.memory": "1Gi",
      "requests.storage": "5Gi",
      persistentvolumeclaims: "10",
      "services.nodeports": "0",
      "services.loadbalancers": "0",
      "count/secrets": "100",
      "count/configmaps": "100",
    });
    const managers = rq.metadata?.managedFields?.map((m) => [m.manager, m.operation]);
    expect(managers).toContainEqual(["paas-operator", "Apply"]);
  });

  it("updates the quota when called again with other limits", async () => {
    const res = await kube.ensureNamespace(ns, { cpu: "2", memory: "2Gi", storage: "5Gi" });
    expect(res.created).toBe(false);
    const rq = await core.readNamespacedResourceQuota({ name: "paas-quota", namespace: ns });
    expect(rq.spec?.hard).toMatchObject({ "limits.cpu": "2", "requests.memory": "2Gi" });
  });

  it("has the API server refuse a pod beyond the quota", async () => {
    // Quota admission needs the quota's status first; the controller fills it in shortly.
    await eventually("quota status", async () => {
      const rq = await core.readNamespacedResourceQuota({ name: "paas-quota", namespace: ns });
      return rq.status?.hard?.["limits.cpu"] === "2" ? true : undefined;
    });
    const err = await core
      .createNamespacedPod({ namespace: ns, body: smallPod("too-big", "4", "256Mi") })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiException);
    expect((err as ApiException<string>).code).toBe(403);
    expect(String((err as ApiException<string>).body)).toContain("exceeded quota: paas-quota");
    expect(kubeError(err, "create pod").kind).toBe("resource_exhausted");
  });

  it("shows quota usage in getNamespace", async () => {
    await core.createNamespacedPod({ namespace: ns, body: smallPod("fits", "250m", "128Mi") });
    const info = await eventually("quota usage", async () => {
      const n = await kube.getNamespace(ns);
      const cpu = n.quota.find((q) => q.resource === "requests.cpu");
      return cpu?.used === "250m" ? n : undefined;
    });
    expect(info.phase).toBe("Active");
    expect(info.created).toBeInstanceOf(Date);
    expect(info.quota).toContainEqual({ resource: "limits.memory", hard: "2Gi", used: "128Mi" });
  });

  it("fills in default limits for containers without any (LimitRange)", async () => {
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: "no-limits" },
        spec: { containers: [{ name: "c", image: "registry.invalid/none:1" }] },
      },
    });
    const p = await core.readNamespacedPod({ name: "no-limits", namespace: ns });
    expect(p.spec?.containers[0]?.resources?.limits).toEqual({ cpu: "500m", memory: "512Mi" });
  });

  it("lists managed namespaces by prefix, leaving out unmanaged ones", async () => {
    const unmanaged = nsName("foreign");
    created.add(unmanaged);
    await core.createNamespace({ body: { metadata: { name: unmanaged } } });
    const list = await kube.listNamespaces(`paas-ws-it-${run}-`);
    expect(list.map((n) => n.name)).toEqual([ns]);
    expect(list[0]!.quota.length).toBe(10);
    expect(await kube.listNamespaces("paas-ws-nothing-like-this-")).toEqual([]);

    await expect(kube.getNamespace(unmanaged)).rejects.toMatchObject({ kind: "not_found" });
    await expect(kube.deleteNamespace(unmanaged)).rejects.toMatchObject({ kind: "not_found" });
    await expect(kube.ensureNamespace(unmanaged, { cpu: "1", memory: "1Gi", storage: "1Gi" })).rejects.toMatchObject({
      kind: "permission_denied",
    });
    const raw = await core.readNamespace({ name: unmanaged });
    expect(raw.metadata?.labels?.[MANAGED_KEY]).toBeUndefined();
    expect(raw.metadata?.deletionTimestamp).toBeUndefined();
  });

  it("deletes a managed namespace", async () => {
    await kube.deleteNamespace(ns);
    const raw = await core.readNamespace({ name: ns }).catch((e: unknown) => e);
    // Either gone already or terminating (finalizers run in the controller-manager).
    if (!(raw instanceof ApiException)) expect(raw).toMatchObject({ status: { phase: "Terminating" } });
    await expect(kube.getNamespace("paas-ws-it-absent-" + run)).rejects.toMatchObject({ kind: "not_found" });
  });
});

/** Collector drains a watch in the background, as a server stream would. */
class Collector {
  readonly events: ReleaseWatchEvent[] = [];
  readonly times: number[] = [];
  done = false;
  error: unknown;
  readonly finished: Promise<void>;
  constructor(stream: AsyncIterable<ReleaseWatchEvent>) {
    this.finished = (async () => {
      try {
        for await (const ev of stream) {
          this.events.push(ev);
          this.times.push(Date.now());
        }
      } catch (err) {
        this.error = err;
      } finally {
        this.done = true;
      }
    })();
  }
  async waitFor(what: string, pred: (ev: ReleaseWatchEvent) => boolean, from = 0, timeoutMs = 90_000): Promise<number> {
    return eventually(
      what,
      async () => {
        if (this.error) throw this.error;
        const i = this.events.findIndex((ev, idx) => idx >= from && pred(ev));
        return i >= 0 ? i : undefined;
      },
      timeoutMs,
    );
  }
}

const tcpHandles = () => process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap").length;

describe("watchRelease", () => {
  const ns = nsName("watch");
  const helm = (...args: string[]) =>
    execa(process.env.HELM_BINARY!, [...args, "--namespace", ns], {
      env: { KUBECONFIG: process.env.KUBECONFIG! },
      timeout: 150_000,
    });

  it("follows a release from before install through pod churn to uninstall", async () => {
    created.add(ns);
    await kube.ensureNamespace(ns, { cpu: "4", memory: "4Gi", storage: "1Gi" });
    const ac = new AbortController();
    const t0 = Date.now();
    const c = new Collector(kube.watchRelease(ns, "web", ac.signal));
    await c.waitFor("snapshot", (ev) => ev.kind === "snapshot");
    expect(c.events[0]).toEqual({ kind: "snapshot", release: undefined, pods: [] });

    const installAt = Date.now();
    await helm(
      "install",
      "web",
      "podinfo",
      "--repo",
      process.env.CHART_REPO_URL!,
      "--version",
      "6.13.0",
      "--set",
      "replicaCount=2",
    );
    const installedAt = Date.now();
    const deployed = await c.waitFor(
      "release deployed",
      (ev) => ev.kind === "release_changed" && ev.release.status === "deployed",
    );
    const rel = (c.events[deployed] as Extract<ReleaseWatchEvent, { kind: "release_changed" }>).release;
    expect(rel).toMatchObject({
      name: "web",
      namespace: ns,
      revision: 1,
      chart: "podinfo",
      chartVersion: "6.13.0",
      values: { replicaCount: 2 },
    });

    // Pods appear (Pending) and become Running/Ready.
    const latest = () => {
      const pods = new Map<string, PodInfo>();
      for (const ev of c.events) {
        if (ev.kind === "pod_added" || ev.kind === "pod_modified") pods.set(ev.pod.name, ev.pod);
        if (ev.kind === "pod_deleted") pods.delete(ev.pod.name);
      }
      return pods;
    };
    await eventually(
      "two ready pods",
      async () => {
        const ready = [...latest().values()].filter((p) => p.ready && p.phase === "Running");
        return ready.length === 2 ? true : undefined;
      },
      90_000,
    );
    // Whether the first pod_added is still Pending depends on timing (kwok readies pods in
    // ~250 ms and updates are coalesced), so only the order of kinds is asserted.
    expect(c.events.findIndex((ev) => ev.kind === "pod_added")).toBeGreaterThan(
      c.events.findIndex((ev) => ev.kind === "release_changed"),
    );
    const readyAt = Date.now();

    // Deleting a pod: pod_deleted for it, pod_added for its replacement.
    const victim = [...latest().keys()][0]!;
    const mark = c.events.length;
    const deleteAt = Date.now();
    await core.deleteNamespacedPod({ name: victim, namespace: ns });
    await c.waitFor("pod_deleted", (ev) => ev.kind === "pod_deleted" && ev.pod.name === victim, mark);
    const deletedAt = Date.now();
    await c.waitFor("replacement", (ev) => ev.kind === "pod_added" && ev.pod.name !== victim, mark);
    await eventually("replacement ready", async () => {
      const pods = [...latest().values()];
      return pods.length === 2 && pods.every((p) => p.ready) ? true : undefined;
    });
    const replacedAt = Date.now();

    // Uninstall ends the stream.
    await helm("uninstall", "web");
    await c.finished;
    expect(c.error).toBeUndefined();
    expect(c.events.at(-1)).toEqual({ kind: "release_uninstalled" });
    const uninstalledAt = Date.now();

    console.log(
      `[kube-client it] timings (ms): helm install ${installedAt - installAt}, install→2 pods ready ${readyAt - installAt}, ` +
        `pod delete→pod_deleted ${deletedAt - deleteAt}, delete→replacement ready ${replacedAt - deleteAt}, ` +
        `uninstall→stream end ${uninstalledAt - replacedAt}, total ${uninstalledAt - t0}; events: ${c.events.map((e) => e.kind + ("pod" in e ? `(${e.pod.phase}${e.pod.ready ? ",ready" : ""}${e.pod.reasons.length ? "," + e.pod.reasons.join("|") : ""})` : "release" in e && e.release ? `(${e.release.status})` : "")).join(" ")}`,
    );
  });

  it("stops promptly on abort and releases its watch connections", async () => {
    // Other sockets of this worker (keep-alive of earlier requests) come and go; the
    // baseline is whatever is open now, and the watch's sockets must go back below it.
    const before = tcpHandles();
    const ac = new AbortController();
    const c = new Collector(kube.watchRelease(ns, "web", ac.signal));
    await c.waitFor("snapshot", (ev) => ev.kind === "snapshot");
    await new Promise((r) => setTimeout(r, 300)); // let both watches connect
    const t0 = Date.now();
    ac.abort();
    await c.finished;
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(c.error).toBeUndefined();
    // Watch sockets are destroyed on abort; sockets of plain requests may idle in keep-alive a few seconds.
    await eventually("sockets closed", async () => (tcpHandles() <= before ? true : undefined), 15_000);
  });

  it("reads the stored release and the release's pods", async () => {
    await helm(
      "install",
      "api",
      "podinfo",
      "--repo",
      process.env.CHART_REPO_URL!,
      "--version",
      "6.13.0",
      "--labels",
      "team=blue",
    );
    const stored = await kube.getStoredRelease(ns, "api");
    expect(stored?.release).toMatchObject({ name: "api", revision: 1, chart: "podinfo", appVersion: "6.13.0" });
    expect(stored?.labels).toMatchObject({ owner: "helm", name: "api", version: "1", team: "blue" });
    const pods = await eventually("api pods", async () => {
      const p = await kube.listReleasePods(ns, "api");
      return p.length === 1 && p[0]!.ready ? p : undefined;
    });
    expect(pods[0]).toMatchObject({ phase: "Running", readyContainers: 1, totalContainers: 1 });
    expect(await kube.getStoredRelease(ns, "absent")).toBeUndefined();
  });
});
