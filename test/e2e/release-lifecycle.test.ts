import { execFile } from "node:child_process";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import * as grpc from "@grpc/grpc-js";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPaasClient, type PaasClient } from "../../clients/paas-client.ts";
import { ReleaseStatus, WatchEventKind, type WatchReleaseStatusResponse } from "../../gen/paas/v1/release_pb.js";
import { startServer, testbedEnv, uniqueNamespace, type ServerProcess } from "../support/testbed.ts";
import { failure } from "../support/failure.ts";

const run = promisify(execFile);
const tb = testbedEnv();
const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
const core = kc.makeApiClient(k8s.CoreV1Api);

/** collect reads a stream in the background until `until` says stop or the timeout passes. */
function collect(
  stream: AsyncIterable<WatchReleaseStatusResponse>,
  until: (seen: WatchReleaseStatusResponse[]) => boolean,
  timeoutMs = 120_000,
) {
  const seen: WatchReleaseStatusResponse[] = [];
  const done = (async () => {
    const timer = setTimeout(() => undefined, timeoutMs);
    try {
      for await (const m of stream) {
        seen.push(m);
        if (until(seen)) break;
      }
    } finally {
      clearTimeout(timer);
    }
    return seen;
  })();
  return { seen, done };
}

describe.each([
  ["Helm v4", tb.HELM_BINARY],
  ["Helm v3", tb.HELM_V3_BINARY],
])("release lifecycle with %s", (_label, helmBinary) => {
  let server: ServerProcess;
  let json: PaasClient;
  let h2: PaasClient;
  const ns = uniqueNamespace("e2e");

  beforeAll(async () => {
    server = await startServer({ HELM_BINARY: helmBinary });
    json = createPaasClient({
      baseUrl: server.baseUrl,
      apiKey: server.apiKey,
      protocol: "connect",
      httpVersion: "1.1",
    });
    h2 = createPaasClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, protocol: "grpc" });
  });

  afterAll(async () => {
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
    expect(await server.stop()).toBe(0);
  });

  it("creates a namespace with a quota the API server enforces", async () => {
    const res = await json.namespaces.createNamespace({
      name: ns,
      cpuLimit: "2",
      memoryLimit: "4Gi",
      storageLimit: "10Gi",
    });
    expect(res.created).toBe(true);
    const quotas = await core.listNamespacedResourceQuota({ namespace: ns });
    expect(quotas.items).toHaveLength(1);
    expect(quotas.items[0]?.spec?.hard).toMatchObject({
      "limits.cpu": "2",
      "limits.memory": "4Gi",
      "requests.storage": "10Gi",
    });
    const tooBig: k8s.V1Pod = {
      metadata: { name: "too-big" },
      spec: {
        containers: [
          {
            name: "c",
            image: "busybox",
            resources: { requests: { cpu: "3", memory: "1Gi" }, limits: { cpu: "3", memory: "1Gi" } },
          },
        ],
      },
    };
    const refused = await core.createNamespacedPod({ namespace: ns, body: tooBig }).then(
      () => undefined,
      (err: unknown) => err as { code?: number; body?: string },
    );
    expect(refused?.code).toBe(403);
    expect(String(refused?.body)).toContain("exceeded quota");
    const again = await h2.namespaces.createNamespace({ name: ns, cpuLimit: "3" });
    expect(again.created).toBe(false);
    const got = await json.namespaces.getNamespace({ name: ns });
    expect(got.namespace?.quota.find((q) => q.resource === "limits.cpu")).toMatchObject({ hard: "3" });
  });

  it("streams a release's pods from Pending to Running when the watch opens before the install", async () => {
    const watch = collect(json.releases.watchReleaseStatus({ namespace: ns, name: "web" }), (seen) =>
      seen.some((m) => m.kind !== WatchEventKind.SNAPSHOT && m.pod?.phase === "Running" && m.pod.podReady),
    );
    await new Promise((r) => setTimeout(r, 500));
    const res = await json.releases.installRelease({
      namespace: ns,
      name: "web",
      chart: "podinfo",
      repoUrl: tb.CHART_REPO_URL,
      version: "6.13.0",
      wait: true,
    });
    expect(res.release).toMatchObject({
      name: "web",
      revision: 1,
      status: ReleaseStatus.DEPLOYED,
      chart: "podinfo",
      chartVersion: "6.13.0",
    });
    const seen = await watch.done;
    expect(seen[0]?.kind).toBe(WatchEventKind.SNAPSHOT);
    expect(seen[0]?.release).toBeUndefined();
    expect(seen.some((m) => m.kind === WatchEventKind.RELEASE_CHANGED)).toBe(true);
    expect(seen.some((m) => m.kind === WatchEventKind.POD_ADDED)).toBe(true);
  });

  it("reports the pods Running and Ready", async () => {
    const status = await h2.releases.getReleaseStatus({ namespace: ns, name: "web" });
    expect(status.release?.status).toBe(ReleaseStatus.DEPLOYED);
    expect(status.pods.length).toBeGreaterThan(0);
    for (const pod of status.pods) expect(pod).toMatchObject({ phase: "Running", ready: "1/1", podReady: true });
  });

  it("streams a deleted pod and its replacement", async () => {
    const before = await json.releases.getReleaseStatus({ namespace: ns, name: "web" });
    const victim = before.pods[0]!.name;
    const watch = collect(
      json.releases.watchReleaseStatus({ namespace: ns, name: "web" }),
      (seen) =>
        seen.some((m) => m.kind === WatchEventKind.POD_DELETED && m.pod?.name === victim) &&
        seen.some((m) => m.kind === WatchEventKind.POD_ADDED && m.pod?.name !== victim),
    );
    await new Promise((r) => setTimeout(r, 500));
    await core.deleteNamespacedPod({ name: victim, namespace: ns, gracePeriodSeconds: 0 });
    const seen = await watch.done;
    expect(seen.some((m) => m.kind === WatchEventKind.POD_DELETED && m.pod?.name === victim)).toBe(true);
  });

  it("installs postgresql from the OCI registry", async () => {
    const res = await json.releases.installRelease({
      namespace: ns,
      name: "db",
      chart: `oci://${tb.OCI_REGISTRY}/charts/postgresql`,
      version: "17.1.0",
      values: { primary: { persistence: { enabled: false } }, auth: { postgresPassword: "e2e-secret-password" } },
      wait: true,
    });
    expect(res.release).toMatchObject({ status: ReleaseStatus.DEPLOYED, chart: "postgresql", chartVersion: "17.1.0" });
    const status = await json.releases.getReleaseStatus({ namespace: ns, name: "db" });
    expect(status.pods.length).toBeGreaterThan(0);
    expect(status.pods.every((p) => p.phase === "Running" && p.podReady)).toBe(true);
    // Values holding a password never reach the logs.
    expect(JSON.stringify(server.logs)).not.toContain("e2e-secret-password");
  });

  it("upgrades without naming the chart, lists revisions, rolls back and uninstalls", async () => {
    const up = await json.releases.upgradeRelease({
      namespace: ns,
      name: "web",
      version: "6.14.1",
      values: { replicaCount: 2 },
    });
    expect(up.release).toMatchObject({ revision: 2, chartVersion: "6.14.1", status: ReleaseStatus.DEPLOYED });
    expect(up.release?.values).toMatchObject({ replicaCount: 2 });
    const revs = await json.releases.listReleaseRevisions({ namespace: ns, name: "web" });
    expect(revs.revisions.map((r) => [r.revision, r.status])).toEqual([
      [1, ReleaseStatus.SUPERSEDED],
      [2, ReleaseStatus.DEPLOYED],
    ]);
    const rb = await h2.releases.rollbackRelease({ namespace: ns, name: "web", revision: 1 });
    expect(rb.release).toMatchObject({ revision: 3, chartVersion: "6.13.0" });
    // Each revision names the operation that made it (helm copies revision 1's labels into a
    // rollback; the operator stamps its own), in Helm's storage as `helm history` reads it.
    const stored = await core.listNamespacedSecret({ namespace: ns, labelSelector: "owner=helm,name=web" });
    const opOf = Object.fromEntries(
      stored.items.map((sec) => [sec.metadata!.labels!.version, sec.metadata!.labels!["paas-operation"]]),
    );
    expect(opOf["2"]).toBe(up.release?.operationId);
    expect(opOf["3"]).toBe(rb.release?.operationId);
    expect(new Set([opOf["1"], opOf["2"], opOf["3"]]).size).toBe(3);
    expect(stored.items.every((sec) => sec.metadata!.labels!["paas-caller"] === rb.release?.changedBy)).toBe(true);
    const list = await json.releases.listReleases({ namespace: ns });
    expect(list.releases.map((r) => r.name).sort()).toEqual(["db", "web"]);
    await json.releases.uninstallRelease({ namespace: ns, name: "web" });
    expect((await failure(json.releases.getRelease({ namespace: ns, name: "web" }))).code).toBe(Code.NotFound);
  });

  it("runs five concurrent upgrades of one release, all succeeding in order", async () => {
    const results = await Promise.all(
      [1, 2, 3, 4, 5].map((i) =>
        (i % 2 ? json : h2).releases.upgradeRelease({
          namespace: ns,
          name: "db",
          values: { commonLabels: { round: String(i) } },
        }),
      ),
    );
    // Arrival order over two connections is not call order; each upgrade gets its own revision.
    const revisions = results.map((r) => r.release!.revision).sort((a, b) => a - b);
    expect(revisions).toEqual([2, 3, 4, 5, 6]);
    const revs = await json.releases.listReleaseRevisions({ namespace: ns, name: "db" });
    expect(revs.revisions.map((r) => r.status)).toEqual([
      ...Array(5).fill(ReleaseStatus.SUPERSEDED),
      ReleaseStatus.DEPLOYED,
    ]);
  });

  it("refuses a namespace outside the prefix and a wrong key, changing nothing", async () => {
    expect(
      (
        await failure(
          json.releases.installRelease({
            namespace: "kube-system",
            name: "evil",
            chart: "podinfo",
            repoUrl: tb.CHART_REPO_URL,
          }),
        )
      ).code,
    ).toBe(Code.PermissionDenied);
    const secrets = await core.listNamespacedSecret({ namespace: "kube-system", labelSelector: "owner=helm" });
    expect(secrets.items).toHaveLength(0);
    const wrong = createPaasClient({ baseUrl: server.baseUrl, apiKey: "wrong-key-wrong-key", protocol: "grpc" });
    expect((await failure(wrong.releases.listReleases({ namespace: ns }))).code).toBe(Code.Unauthenticated);
  });
});

describe("real clients and probes", () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("grpc-health-probe passes while serving and fails once stopped", async () => {
    const ok = await run(tb.GRPC_HEALTH_PROBE, [`-addr=127.0.0.1:${server.port}`]);
    expect(ok.stdout + ok.stderr).toContain("SERVING");
    expect(await server.stop()).toBe(0);
    const down = await run(tb.GRPC_HEALTH_PROBE, [`-addr=127.0.0.1:${server.port}`, "-connect-timeout=1s"]).then(
      () => 0,
      (err: { code?: number }) => err.code ?? -1,
    );
    expect(down).not.toBe(0);
  });
});

describe("grpcurl and @grpc/grpc-js against the real server", () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("grpcurl lists services through reflection and calls ListNamespaces", async () => {
    const list = await run(tb.GRPCURL, ["-plaintext", `127.0.0.1:${server.port}`, "list"]);
    expect(list.stdout).toContain("paas.v1.ReleaseService");
    const call = await run(tb.GRPCURL, [
      "-plaintext",
      "-H",
      `x-api-key: ${server.apiKey}`,
      "-d",
      "{}",
      `127.0.0.1:${server.port}`,
      "paas.v1.NamespaceService/ListNamespaces",
    ]);
    expect(() => JSON.parse(call.stdout)).not.toThrow();
  });

  it("buf curl calls the real server through reflection, over gRPC and Connect", async () => {
    const grpcCall = await run("node_modules/.bin/buf", [
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "-H",
      `x-api-key: ${server.apiKey}`,
      "-d",
      "{}",
      `${server.baseUrl}/paas.v1.NamespaceService/ListNamespaces`,
    ]);
    expect(JSON.parse(grpcCall.stdout)).toBeTypeOf("object");
    const denied = await run("node_modules/.bin/buf", [
      "curl",
      "--protocol",
      "connect",
      "-H",
      `x-api-key: ${server.apiKey}`,
      "-d",
      '{"namespace":"kube-system","name":"x"}',
      `${server.baseUrl}/paas.v1.ReleaseService/GetRelease`,
    ]).then(
      () => "",
      (err: { stderr?: string }) => err.stderr ?? "",
    );
    expect(denied).toContain("permission_denied");
  });

  it("grpc-js health check", async () => {
    const client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    const status = await new Promise<number>((resolve, reject) =>
      client.makeUnaryRequest(
        "/grpc.health.v1.Health/Check",
        () => Buffer.alloc(0),
        (b: Buffer) => (b.length >= 2 ? b[1]! : 0),
        {},
        (err, value) => (err ? reject(err) : resolve(value as number)),
      ),
    );
    client.close();
    expect(status).toBe(1); // SERVING
  });
});
