import { readFileSync } from "node:fs";
import { describe, expect, it, type TestContext } from "vitest";
import { PaasError } from "../../../src/errors.ts";
import type { HelmCliOptions } from "../../../src/helm/cli.ts";
import type { GuardPolicy } from "../../../src/helm/render-guard.ts";
import type { TenantAccess } from "../../../src/helm/tenant-access.ts";
import type { InstallOptions } from "../../../src/helm/helm-client.ts";
import { type FakeHelm, fixture, type Rule, startFakeHelm } from "../../support/fake-helm.ts";

// The helm adapter in tenant mode, against the fake helm: which identity every run takes,
// which flags install and upgrade get, that writes wait for the namespace to be ready, and
// that a refused install is uninstalled.

const versions = [
  { major: 3 as const, version: "v3.22.0" },
  { major: 4 as const, version: "v4.3.1" },
];

const POLICY: GuardPolicy = { namespace: "paas-ws-a", scopes: {}, podSecurity: "restricted" };

class FakeTenant implements TenantAccess {
  prepared: string[] = [];
  refreshed = 0;
  refuse?: PaasError;
  userFor(namespace: string): string {
    return `system:serviceaccount:${namespace}:paas-deployer`;
  }
  async prepareWrite(namespace: string): Promise<GuardPolicy> {
    this.prepared.push(namespace);
    if (this.refuse) throw this.refuse;
    return { ...POLICY, namespace };
  }
  refreshDiscovery(): void {
    this.refreshed++;
  }
}

async function start(
  t: TestContext,
  version: string,
  rules: Rule[],
  tenant: TenantAccess,
  over: Partial<HelmCliOptions> = {},
): Promise<FakeHelm> {
  const fake = await startFakeHelm(version, rules, { tenant, ...over });
  t.onTestFinished(() => fake.dispose());
  return fake;
}

const installOpts = (over: Partial<InstallOptions> = {}): InstallOptions => ({
  namespace: "paas-ws-a",
  name: "web",
  timeoutSeconds: 60,
  chart: { ref: "podinfo", version: "6.13.0", repoUrl: "http://charts.example/" },
  values: {},
  createNamespace: false,
  wait: false,
  labels: {},
  ...over,
});

const AS_USER = ["--kube-as-user", "system:serviceaccount:paas-ws-a:paas-deployer"];

function failedStatus(major: 3 | 4, revision: number): string {
  // A recorded `helm status -o json`, as the failed first revision of a refused install.
  return JSON.stringify({
    ...statusFixture(major),
    version: revision,
    info: { ...statusFixture(major).info, status: "failed" },
  });
}
function statusFixture(major: 3 | 4): { info: Record<string, unknown> } & Record<string, unknown> {
  return JSON.parse(readFileSync(fixture(major, "status.json"), "utf8"));
}

describe.concurrent.each(versions)("tenant mode with helm $version", ({ major, version }) => {
  it("impersonates the namespace's deployer in every run about a namespace, never for version", async (t) => {
    const tenant = new FakeTenant();
    const f = await start(
      t,
      version,
      [
        { verb: "list", stdoutFile: fixture(major, "list.json") },
        { verb: "history", stdoutFile: fixture(major, "history.json") },
        { verb: "status", stdoutFile: fixture(major, "status.json") },
        { verb: "get metadata", stdoutFile: fixture(major, "metadata.json") },
      ],
      tenant,
    );
    await f.cli.list("paas-ws-a");
    await f.cli.history("paas-ws-a", "web");
    await f.cli.get("paas-ws-a", "web");
    const runs = await f.calls("run");
    expect(runs.find((r) => r.verb === "version")?.argv).not.toContain("--kube-as-user");
    for (const r of runs.filter((r) => r.verb !== "version")) expect(r.argv.slice(-2), r.verb).toEqual(AS_USER);
    // Reads do not wait for readiness (an extra API call each); writes do.
    expect(tenant.prepared).toEqual([]);
  });

  it("install: ready check first, then --skip-crds and the render guard as post-renderer", async (t) => {
    const tenant = new FakeTenant();
    const f = await start(t, version, [{ verb: "install", stdoutFile: fixture(major, "install.json") }], tenant);
    await f.cli.install(installOpts());
    expect(tenant.prepared).toEqual(["paas-ws-a"]);
    const run = (await f.calls("run")).find((r) => r.verb === "install")!;
    const i = run.argv.indexOf("--post-renderer");
    expect(run.argv).toContain("--skip-crds");
    if (major === 4) expect(run.argv[i + 1]).toBe("paas-render-guard");
    else expect(run.argv[i + 1]).toMatch(/\/paas-helm-home-[^/]+\/bin\/paas-render-guard$/);
    expect(run.argv[i + 2]).toBe("--post-renderer-args");
    expect(run.argv[i + 3]).toMatch(/paas-helm-guard-[^/]+\/run\.json$/);
    expect(run.argv.slice(-2)).toEqual(AS_USER);
  });

  it("upgrade, rollback and uninstall check readiness too; only upgrade is guarded", async (t) => {
    const tenant = new FakeTenant();
    const f = await start(t, version, [{ verb: "upgrade", stdoutFile: fixture(major, "upgrade.json") }], tenant);
    await f.cli.upgrade({ ...installOpts(), resetValues: false, reuseValues: true });
    await f.cli.rollback({ namespace: "paas-ws-a", name: "web", revision: 1, wait: false, timeoutSeconds: 30 });
    await f.cli.uninstall({ namespace: "paas-ws-a", name: "web", timeoutSeconds: 30 });
    expect(tenant.prepared).toEqual(["paas-ws-a", "paas-ws-a", "paas-ws-a"]);
    const runs = await f.calls("run");
    expect(runs.find((r) => r.verb === "upgrade")?.argv).toEqual(
      expect.arrayContaining(["--skip-crds", "--post-renderer"]),
    );
    for (const verb of ["rollback", "uninstall"])
      expect(runs.find((r) => r.verb === verb)?.argv).not.toContain("--post-renderer");
  });

  it("a namespace that is not ready is refused before helm starts", async (t) => {
    const tenant = new FakeTenant();
    tenant.refuse = new PaasError(
      "failed_precondition",
      "namespace paas-ws-a is not fully provisioned; call CreateNamespace again",
    );
    const f = await start(t, version, [], tenant);
    await expect(f.cli.install(installOpts())).rejects.toBe(tenant.refuse);
    await expect(f.cli.uninstall({ namespace: "paas-ws-a", name: "web", timeoutSeconds: 30 })).rejects.toBe(
      tenant.refuse,
    );
    expect((await f.calls("run")).map((r) => r.verb)).toEqual(["version"]);
  });

  it("uninstalls an install the cluster refused (failed first revision), then reports the refusal", async (t) => {
    const tenant = new FakeTenant();
    const f = await start(
      t,
      version,
      [
        {
          verb: "install",
          exitCode: 1,
          stderr:
            'Error: INSTALLATION FAILED: rolebindings.rbac.authorization.k8s.io "x" is forbidden: user "system:serviceaccount:paas-ws-a:paas-deployer" is attempting to grant RBAC permissions not currently held',
        },
        { verb: "status", stdout: failedStatus(major, 1) },
      ],
      tenant,
    );
    const err = await f.cli.install(installOpts()).catch((e: unknown) => e);
    expect(err).toMatchObject({
      kind: "permission_denied",
      message: "The install of release web would grant permissions the tenant does not hold in namespace paas-ws-a",
    });
    const runs = await f.calls("run");
    expect(runs.map((r) => r.verb)).toEqual(["version", "pull", "install", "status", "uninstall"]);
    expect(runs.at(-1)?.argv.slice(-2)).toEqual(AS_USER);
    expect(f.logs.some((l) => l.msg?.startsWith("refused install uninstalled"))).toBe(true);
  });

  it("keeps a failed install that timed out, and a release that is not its own failed first revision", async (t) => {
    const tenant = new FakeTenant();
    const f = await start(
      t,
      version,
      [
        { verb: "install", exitCode: 1, stderr: "Error: INSTALLATION FAILED: context deadline exceeded", maxUses: 1 },
        {
          verb: "install",
          exitCode: 1,
          stderr:
            'Error: INSTALLATION FAILED: pods "p" is forbidden: violates PodSecurity "restricted:latest": privileged',
        },
        { verb: "status", stdout: failedStatus(major, 2) },
      ],
      tenant,
    );
    await expect(f.cli.install(installOpts())).rejects.toMatchObject({ kind: "timeout" });
    await expect(f.cli.install(installOpts())).rejects.toMatchObject({
      kind: "failed_precondition",
      message:
        'The install of release web creates a pod that violates the Pod Security level "restricted" of namespace paas-ws-a',
    });
    expect((await f.calls("run")).map((r) => r.verb)).toEqual([
      "version",
      "pull",
      "install",
      "pull",
      "install",
      "status",
    ]);
  });
});

describe("without tenant mode", () => {
  it("runs helm with the operator's identity and no guard (the plain adapter)", async (t) => {
    const f = await startFakeHelm("v4.3.1", [{ verb: "install", stdoutFile: fixture(4, "install.json") }]);
    t.onTestFinished(() => f.dispose());
    await f.cli.install(installOpts());
    const run = (await f.calls("run")).find((r) => r.verb === "install")!;
    for (const flag of ["--kube-as-user", "--post-renderer", "--skip-crds"]) expect(run.argv).not.toContain(flag);
  });
});
