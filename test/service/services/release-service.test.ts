import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ReleaseStatus, WatchEventKind } from "../../../gen/paas/v1/release_pb.js";
import { PaasError } from "../../../src/errors.ts";
import { isLabelValue } from "../../../src/domain/names.ts";
import type { InstallOptions, UpgradeOptions } from "../../../src/helm/helm-client.ts";
import { createHarness, managedNamespace } from "../../support/harness.ts";
import { failure } from "../../support/failure.ts";

const NS = "paas-ws-acme";

async function setup() {
  const h = await createHarness();
  managedNamespace(h.cluster, NS);
  return h;
}

describe("InstallRelease", () => {
  it("installs from an OCI reference, passes values as data and records the chart reference", async () => {
    const h = await setup();
    const res = await h.releases.installRelease({
      namespace: NS,
      name: "db",
      chart: "oci://registry.example:5000/charts/postgresql",
      version: "17.1.0",
      values: { auth: { password: "s3cret,=\\." }, "a.b": 1 },
    });
    expect(res.release).toMatchObject({
      name: "db",
      namespace: NS,
      revision: 1,
      status: ReleaseStatus.DEPLOYED,
      chartReference: "oci://registry.example:5000/charts/postgresql",
    });
    const install = h.helm.calls.find((c) => c.verb === "install")!.args as InstallOptions;
    expect(install.chart).toEqual({ ref: "oci://registry.example:5000/charts/postgresql", version: "17.1.0" });
    expect(install.values).toEqual({ auth: { password: "s3cret,=\\." }, "a.b": 1 });
    expect(install.timeoutSeconds).toBe(300);
    // Every label is a valid Kubernetes label (Helm stores them on its storage Secret).
    for (const [k, v] of Object.entries(install.labels)) {
      expect(k).toMatch(/^[a-z0-9-]+$/);
      expect(isLabelValue(v), v).toBe(true);
    }
    // The caller and the operation are recorded on the revision.
    expect(install.labels["paas-operation"]).toMatch(/^[a-z0-9]{10,26}$/);
    expect(install.labels["paas-caller"]).toMatch(/^key-[0-9a-f]{8}$/);
    // The recorded reference comes back on GetRelease.
    const got = await h.releases.getRelease({ namespace: NS, name: "db" });
    expect(got.release?.chartReference).toBe("oci://registry.example:5000/charts/postgresql");
    expect(got.release?.values).toEqual({ auth: { password: "s3cret,=\\." }, "a.b": 1 });
  });

  it("resolves repo/chart through the server's configured repositories", async () => {
    const h = await setup();
    await h.releases.installRelease({ namespace: NS, name: "web", chart: "stable/nginx" });
    const install = h.helm.calls.find((c) => c.verb === "install")!.args as InstallOptions;
    expect(install.chart).toEqual({ ref: "nginx", repoUrl: "https://charts.example.test/stable" });
  });

  it("takes a chart name with repo_url", async () => {
    const h = await setup();
    const res = await h.releases.installRelease({
      namespace: NS,
      name: "web",
      chart: "podinfo",
      repoUrl: "http://127.0.0.1:8879",
      version: "6.13.0",
    });
    expect(res.release?.repoUrl).toBe("http://127.0.0.1:8879");
    const install = h.helm.calls.find((c) => c.verb === "install")!.args as InstallOptions;
    expect(install.chart).toEqual({ ref: "podinfo", repoUrl: "http://127.0.0.1:8879", version: "6.13.0" });
  });

  const refused: Array<[string, Partial<{ chart: string; repoUrl: string; version: string }>]> = [
    ["a local path", { chart: "/etc/passwd" }],
    ["a relative path", { chart: "./charts/x" }],
    ["a parent path", { chart: "../x" }],
    ["a home path", { chart: "~/x" }],
    ["file://", { chart: "file:///etc/passwd" }],
    ["an http URL as chart", { chart: "http://example.test/x-1.0.0.tgz" }],
    ["an unconfigured repo", { chart: "other/nginx" }],
    ["a name without repo_url", { chart: "nginx" }],
    ["repo_url with credentials", { chart: "nginx", repoUrl: "https://user:pw@example.test/charts" }],
    ["repo_url with file scheme", { chart: "nginx", repoUrl: "file:///tmp" }],
    ["an OCI reference with credentials", { chart: "oci://u:p@r.example/c/nginx" }],
    ["an OCI reference with ..", { chart: "oci://r.example/c/../nginx" }],
    ["a version that looks like a flag", { chart: "oci://r.example/c/nginx", version: "--devel" }],
    ["a chart with a backslash", { chart: "a\\b" }],
  ];
  for (const [what, fields] of refused) {
    it(`refuses ${what} with INVALID_ARGUMENT and runs nothing`, async () => {
      const h = await setup();
      const err = await failure(h.releases.installRelease({ namespace: NS, name: "web", ...fields } as never));
      expect(err.code).toBe(Code.InvalidArgument);
      expect(h.helm.verbs()).toEqual(["version"]);
    });
  }

  it("refuses an install into a namespace this service does not manage", async () => {
    const h = await createHarness();
    const err = await failure(
      h.releases.installRelease({ namespace: NS, name: "web", chart: "oci://r.example/c/nginx" }),
    );
    expect(err.code).toBe(Code.NotFound);
    expect(h.helm.verbs()).toEqual(["version"]);
  });

  it("creates the namespace with the default quota when asked", async () => {
    const h = await createHarness();
    await h.releases.installRelease({
      namespace: NS,
      name: "web",
      chart: "oci://r.example/c/nginx",
      createNamespace: true,
    });
    expect(h.cluster.namespaces.get(NS)).toEqual({
      quota: { cpu: "2", memory: "4Gi", storage: "20Gi" },
      managed: true,
    });
  });

  it("bounds the requested timeout", async () => {
    const h = await setup();
    const tooLong = await failure(
      h.releases.installRelease({
        namespace: NS,
        name: "web",
        chart: "oci://r.example/c/nginx",
        timeout: { seconds: 999999n, nanos: 0 },
      }),
    );
    expect(tooLong.code).toBe(Code.InvalidArgument);
    await h.releases.installRelease({
      namespace: NS,
      name: "web",
      chart: "oci://r.example/c/nginx",
      timeout: { seconds: 42n, nanos: 0 },
      wait: true,
    });
    const install = h.helm.calls.find((c) => c.verb === "install")!.args as InstallOptions;
    expect(install).toMatchObject({ timeoutSeconds: 42, wait: true });
  });
});

describe("UpgradeRelease", () => {
  it("reuses the recorded chart reference and the deployed chart version when chart is omitted", async () => {
    const h = await setup();
    await h.releases.installRelease({
      namespace: NS,
      name: "web",
      chart: "podinfo",
      repoUrl: "http://127.0.0.1:8879",
      version: "6.13.0",
    });
    const res = await h.releases.upgradeRelease({ namespace: NS, name: "web", values: { replicaCount: 2 } });
    expect(res.release?.revision).toBe(2);
    const upgrade = h.helm.calls.find((c) => c.verb === "upgrade")!.args as UpgradeOptions;
    expect(upgrade.chart).toEqual({ ref: "podinfo", repoUrl: "http://127.0.0.1:8879", version: "6.13.0" });
    expect(upgrade.reuseValues).toBe(true);
    expect(upgrade.resetValues).toBe(false);
  });

  it("takes a new version of the recorded chart", async () => {
    const h = await setup();
    await h.releases.installRelease({
      namespace: NS,
      name: "web",
      chart: "oci://r.example/c/podinfo",
      version: "6.13.0",
    });
    await h.releases.upgradeRelease({ namespace: NS, name: "web", version: "6.14.1" });
    const upgrade = h.helm.calls.find((c) => c.verb === "upgrade")!.args as UpgradeOptions;
    expect(upgrade.chart).toEqual({ ref: "oci://r.example/c/podinfo", version: "6.14.1" });
  });

  it("is NOT_FOUND for a release that does not exist, without running helm", async () => {
    const h = await setup();
    const err = await failure(h.releases.upgradeRelease({ namespace: NS, name: "ghost" }));
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toBe(`Release ghost not found in namespace ${NS}`);
    expect(h.helm.verbs()).not.toContain("upgrade");
  });

  it("honours reset_values and an explicit reuse_values=false", async () => {
    const h = await setup();
    await h.releases.installRelease({ namespace: NS, name: "web", chart: "oci://r.example/c/podinfo" });
    await h.releases.upgradeRelease({ namespace: NS, name: "web", resetValues: true });
    await h.releases.upgradeRelease({ namespace: NS, name: "web", reuseValues: false });
    const [a, b] = h.helm.calls.filter((c) => c.verb === "upgrade").map((c) => c.args as UpgradeOptions);
    expect(a).toMatchObject({ resetValues: true, reuseValues: false });
    expect(b).toMatchObject({ resetValues: false, reuseValues: false });
    expect(
      (await failure(h.releases.upgradeRelease({ namespace: NS, name: "web", resetValues: true, reuseValues: true })))
        .code,
    ).toBe(Code.InvalidArgument);
  });

  it("runs five concurrent upgrades of one release one at a time, in order", async () => {
    const h = await setup();
    await h.releases.installRelease({ namespace: NS, name: "web", chart: "oci://r.example/c/podinfo" });
    h.helm.delayMs.upgrade = 20;
    h.helm.maxRunning = 0;
    const results = await Promise.all(
      [1, 2, 3, 4, 5].map((i) => h.releases.upgradeRelease({ namespace: NS, name: "web", values: { i } })),
    );
    expect(results.map((r) => r.release?.revision)).toEqual([2, 3, 4, 5, 6]);
    expect(results.map((r) => r.release?.values?.i)).toEqual([1, 2, 3, 4, 5]);
    expect(h.helm.maxRunning).toBe(1);
  });

  it("runs different releases in parallel up to the concurrency limit", async () => {
    const h = await createHarness({ helmConcurrency: 2 });
    managedNamespace(h.cluster, NS);
    h.helm.delayMs.install = 30;
    await Promise.all(
      [1, 2, 3, 4].map((i) =>
        h.releases.installRelease({ namespace: NS, name: `r${i}`, chart: "oci://r.example/c/podinfo" }),
      ),
    );
    expect(h.helm.maxRunning).toBe(2);
  });
});

describe("errors", () => {
  const cases: Array<[PaasError["kind"], Code]> = [
    ["not_found", Code.NotFound],
    ["already_exists", Code.AlreadyExists],
    ["conflict", Code.Aborted],
    ["failed_precondition", Code.FailedPrecondition],
    ["timeout", Code.DeadlineExceeded],
    ["permission_denied", Code.PermissionDenied],
    ["unavailable", Code.Unavailable],
    ["internal", Code.Internal],
  ];
  for (const [kind, code] of cases) {
    it(`maps a helm ${kind} failure to ${Code[code]} with its message`, async () => {
      const h = await setup();
      h.helm.errors.install = new PaasError(kind, `helm said ${kind}`);
      const err = await failure(
        h.releases.installRelease({ namespace: NS, name: "web", chart: "oci://r.example/c/nginx" }),
      );
      expect(err.code).toBe(code);
      expect(err.rawMessage).toBe(`helm said ${kind}`);
    });
  }

  it("answers INTERNAL with a generic message for an unexpected error, logging the detail", async () => {
    const h = await setup();
    h.helm.errors.install = new Error("boom: password=hunter2 at /srv/x.js:1");
    const err = await failure(
      h.releases.installRelease({ namespace: NS, name: "web", chart: "oci://r.example/c/nginx" }),
    );
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toBe("internal error");
    expect(h.logs.text).toContain("boom");
  });

  it("refuses mutations with UNAVAILABLE while draining but keeps serving reads", async () => {
    const h = await setup();
    await h.releases.installRelease({ namespace: NS, name: "web", chart: "oci://r.example/c/nginx" });
    h.lifecycle.startDraining();
    const err = await failure(h.releases.upgradeRelease({ namespace: NS, name: "web" }));
    expect(err.code).toBe(Code.Unavailable);
    expect((await failure(h.namespaces.createNamespace({ name: "paas-ws-new" }))).code).toBe(Code.Unavailable);
    expect((await h.releases.getRelease({ namespace: NS, name: "web" })).release?.revision).toBe(1);
  });
});

describe("reads", () => {
  it("GetRelease is NOT_FOUND with the old operator's message", async () => {
    const h = await setup();
    const err = await failure(h.releases.getRelease({ namespace: NS, name: "web" }));
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toBe(`Release web not found in namespace ${NS}`);
  });

  it("GetReleaseStatus lists pods with ready counts and reasons", async () => {
    const h = await setup();
    await h.releases.installRelease({ namespace: NS, name: "web", chart: "oci://r.example/c/nginx" });
    const started = new Date(Date.now() - 300_000);
    h.cluster.pods.set(`${NS}/web`, [
      {
        name: "web-1",
        phase: "Running",
        readyContainers: 1,
        totalContainers: 1,
        restarts: 0,
        started,
        reasons: [],
        node: "n1",
        ready: true,
      },
      {
        name: "web-2",
        phase: "Pending",
        readyContainers: 0,
        totalContainers: 2,
        restarts: 3,
        reasons: ["CrashLoopBackOff"],
        node: "",
        ready: false,
      },
    ]);
    const res = await h.releases.getReleaseStatus({ namespace: NS, name: "web" });
    expect(res.release?.name).toBe("web");
    expect(res.pods.map((p) => [p.name, p.phase, p.ready, p.restarts, p.reasons])).toEqual([
      ["web-1", "Running", "1/1", 0, []],
      ["web-2", "Pending", "0/2", 3, ["CrashLoopBackOff"]],
    ]);
    expect(res.pods[0]?.age).toMatch(/^5m(\d+s)?$/);
    expect(res.podRetrievalError).toBe("");
  });

  it("GetReleaseStatus still answers when pods cannot be read", async () => {
    const h = await setup();
    await h.releases.installRelease({ namespace: NS, name: "web", chart: "oci://r.example/c/nginx" });
    h.kube.podsError = new PaasError("unavailable", "Kubernetes API unreachable");
    const res = await h.releases.getReleaseStatus({ namespace: NS, name: "web" });
    expect(res.release?.revision).toBe(1);
    expect(res.podRetrievalError).toBe("Kubernetes API unreachable");
  });

  it("ListReleaseRevisions, RollbackRelease, ListReleases and UninstallRelease", async () => {
    const h = await setup();
    await h.releases.installRelease({ namespace: NS, name: "web", chart: "oci://r.example/c/nginx", version: "1.0.0" });
    await h.releases.upgradeRelease({ namespace: NS, name: "web", version: "2.0.0" });
    const revs = await h.releases.listReleaseRevisions({ namespace: NS, name: "web" });
    expect(revs.revisions.map((r) => [r.revision, r.status, r.chart])).toEqual([
      [1, ReleaseStatus.SUPERSEDED, "nginx-1.0.0"],
      [2, ReleaseStatus.DEPLOYED, "nginx-2.0.0"],
    ]);
    const rb = await h.releases.rollbackRelease({ namespace: NS, name: "web", revision: 1 });
    expect(rb.release?.revision).toBe(3);
    expect(rb.release?.chartVersion).toBe("1.0.0");
    expect(rb.message).toContain("revision 1");
    expect((await failure(h.releases.rollbackRelease({ namespace: NS, name: "web", revision: -1 }))).code).toBe(
      Code.InvalidArgument,
    );
    const list = await h.releases.listReleases({ namespace: NS });
    expect(list.releases.map((r) => r.name)).toEqual(["web"]);
    const un = await h.releases.uninstallRelease({ namespace: NS, name: "web" });
    expect(un.message).toBe(`Release web uninstalled from namespace ${NS}`);
    expect((await failure(h.releases.getRelease({ namespace: NS, name: "web" }))).code).toBe(Code.NotFound);
  });

  it("WatchReleaseStatus maps adapter events to stream messages", async () => {
    const h = await setup();
    const pod = {
      name: "web-1",
      phase: "Pending",
      readyContainers: 0,
      totalContainers: 1,
      restarts: 0,
      reasons: [],
      node: "",
      ready: false,
    };
    h.kube.watchEvents = [
      { kind: "snapshot", pods: [] },
      { kind: "pod_added", pod },
      { kind: "pod_modified", pod: { ...pod, phase: "Running", readyContainers: 1, ready: true } },
      { kind: "release_uninstalled" },
    ];
    const got = [];
    for await (const m of h.releases.watchReleaseStatus({ namespace: NS, name: "web" })) got.push(m);
    expect(got.map((m) => m.kind)).toEqual([
      WatchEventKind.SNAPSHOT,
      WatchEventKind.POD_ADDED,
      WatchEventKind.POD_MODIFIED,
      WatchEventKind.RELEASE_UNINSTALLED,
    ]);
    expect(got[0]?.release).toBeUndefined();
    expect(got[2]?.pod).toMatchObject({ phase: "Running", ready: "1/1", podReady: true });
  });
});
