import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { gzipSync } from "node:zlib";
import { describe, expect, it, type TestContext } from "vitest";
import { PaasError } from "../../../src/errors.ts";
import { readChartArchive } from "../../../src/helm/chart-archive.ts";
import type { InstallOptions, UpgradeOptions } from "../../../src/helm/helm-client.ts";
import type { HelmCliOptions } from "../../../src/helm/cli.ts";
import { type FakeHelm, fixture, type Rule, startFakeHelm } from "../../support/fake-helm.ts";

const versions = [
  { major: 3 as const, version: "v3.22.0" },
  { major: 4 as const, version: "v4.3.1" },
];

// Every test has its own fake helm folder and client, so tests run concurrently
// (each fake helm run is a Node process start, ~100 ms).
// (The test's own context registers the cleanup: with concurrent tests the global
// onTestFinished cannot tell which test is current.)
async function start(
  t: TestContext,
  version: string,
  rules: Rule[] = [],
  over: Partial<HelmCliOptions> = {},
): Promise<FakeHelm> {
  const fake = await startFakeHelm(version, rules, over);
  t.onTestFinished(() => fake.dispose());
  return fake;
}

function installOpts(over: Partial<InstallOptions> = {}): InstallOptions {
  return {
    namespace: "ws-a",
    name: "web",
    timeoutSeconds: 120,
    chart: { ref: "podinfo", version: "6.13.0", repoUrl: "http://charts.example/" },
    values: { replicaCount: 2, secret: { password: "hunter2" } },
    createNamespace: true,
    wait: true,
    labels: { "paas.example/tenant": "t1" },
    ...over,
  };
}

function upgradeOpts(over: Partial<UpgradeOptions> = {}): UpgradeOptions {
  return {
    namespace: "ws-a",
    name: "web",
    timeoutSeconds: 60,
    chart: { ref: "podinfo", version: "6.14.1", repoUrl: "http://charts.example/" },
    values: { replicaCount: 3 },
    resetValues: false,
    reuseValues: true,
    wait: false,
    labels: {},
    ...over,
  };
}

// A `pull` rule of the fake helm: the archive it writes (and the digest it prints for oci://).
function pullRule(chart: {
  name?: string;
  version?: string;
  digest?: string;
  chartYaml?: string;
  write?: boolean;
}): Rule {
  return { verb: "pull", ...{ chart } } as Rule;
}

async function rejection(p: Promise<unknown>): Promise<PaasError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PaasError);
  return err as PaasError;
}

describe.concurrent.each(versions)("helm $version against the fake helm", ({ major, version }) => {
  it("detects the version once and picks the flags of that major", async (t) => {
    const f = await start(t, version, [{ verb: "list", stdoutFile: fixture(major, "list.json") }]);
    expect(await f.cli.version()).toBe(version);
    expect(await f.cli.major()).toBe(major);
    await f.cli.list("ws-a");
    await f.cli.list("ws-a");
    const runs = await f.calls("run");
    expect(runs.filter((r) => r.verb === "version")).toHaveLength(1);
    const list = runs.find((r) => r.verb === "list");
    expect(list?.argv.includes("--all")).toBe(major === 3);
  });

  it("install passes a private values file and returns the release from its own output", async (t) => {
    const f = await start(t, version, [{ verb: "install", stdoutFile: fixture(major, "install.json") }]);
    const release = await f.cli.install(installOpts());
    const runs = await f.calls("run");
    const pull = runs.find((r) => r.verb === "pull")!;
    const run = runs.find((r) => r.verb === "install")!;
    // The chart is pulled first, then the pulled archive is installed: nothing resolved twice.
    const dest = pull.argv.at(-1)!;
    expect(pull.argv).toEqual([
      "pull",
      "podinfo",
      "--version",
      "6.13.0",
      "--repo",
      "http://charts.example/",
      "--destination",
      dest,
    ]);
    expect(run.argv).toEqual([
      "install",
      "web",
      join(dest, "podinfo-6.13.0.tgz"),
      "--namespace",
      "ws-a",
      "--output",
      "json",
      "--timeout",
      "120s",
      "--values",
      run.values?.path,
      // The resolved version is recorded; an HTTP chart has no digest, so both halves are empty.
      "--labels",
      "paas-chart-sha256-0=,paas-chart-sha256-1=,paas-chart-version=6.13.0,paas.example/tenant=t1",
      "--create-namespace",
      "--wait",
    ]);
    expect(JSON.parse(run.values?.content ?? "")).toEqual({ replicaCount: 2, secret: { password: "hunter2" } });
    expect(run.values?.mode).toBe("600");
    // Deleted after the run, and never on the command line or in the log.
    expect(existsSync(run.values?.path ?? "")).toBe(false);
    expect(run.argv.join(" ")).not.toContain("hunter2");
    expect(JSON.stringify(f.logs)).not.toContain("hunter2");
    expect(release).toMatchObject({
      name: "web",
      namespace: expect.any(String),
      revision: 1,
      status: "deployed",
      chart: "podinfo",
      chartVersion: "6.13.0",
    });
    expect(release.chartDigest).toBeUndefined();
    expect(release.updated).toBeInstanceOf(Date);
    expect(f.logs.find((l) => l.msg === "helm install")).toMatchObject({
      level: "info",
      obj: { exitCode: 0, durationMs: expect.any(Number) },
    });
  });

  it("pulls into the run's own helm home and installs that archive; both are removed afterwards", async (t) => {
    const f = await start(t, version, [{ verb: "install", stdoutFile: fixture(major, "install.json") }]);
    await f.cli.install(installOpts());
    const runs = await f.calls("run");
    const pull = runs.find((r) => r.verb === "pull")!;
    const install = runs.find((r) => r.verb === "install")!;
    for (const key of ["HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"])
      expect(pull.env[key]).toBe(install.env[key]);
    const root = dirname(pull.env.HELM_CACHE_HOME!);
    expect(dirname(pull.argv.at(-1)!)).toBe(root);
    expect(install.argv[2]!.startsWith(`${root}/`)).toBe(true);
    expect(existsSync(install.argv[2]!)).toBe(false);
    expect(existsSync(root)).toBe(false);
  });

  it("records the exact version a range resolved to, and the OCI digest helm printed", async (t) => {
    const digest = `sha256:${"ab".repeat(32)}`;
    const f = await start(t, version, [
      pullRule({ version: "6.14.1", digest }),
      { verb: "install", stdoutFile: fixture(major, "upgrade.json") },
    ]);
    const release = await f.cli.install(
      installOpts({
        chart: { ref: "oci://127.0.0.1:5000/charts/podinfo", version: "^6.0.0" },
        labels: { "paas-chart-version": "forged" },
      }),
    );
    const runs = await f.calls("run");
    const pull = runs.find((r) => r.verb === "pull")!;
    const install = runs.find((r) => r.verb === "install")!;
    // Range and --plain-http go to the pull; the install gets the archive alone.
    expect(pull.argv.slice(0, 5)).toEqual([
      "pull",
      "oci://127.0.0.1:5000/charts/podinfo",
      "--version",
      "^6.0.0",
      "--plain-http",
    ]);
    expect(install.argv[2]).toMatch(/\/podinfo-6\.14\.1\.tgz$/);
    expect(install.argv).not.toContain("--version");
    expect(install.argv).not.toContain("--plain-http");
    const labels = install.argv[install.argv.indexOf("--labels") + 1];
    // The caller's labels cannot forge what was resolved.
    expect(labels).toBe(
      `paas-chart-sha256-0=${"ab".repeat(16)},paas-chart-sha256-1=${"ab".repeat(16)},paas-chart-version=6.14.1`,
    );
    expect(release).toMatchObject({ chartVersion: "6.14.1", chartDigest: digest });
    expect(f.logs.filter((l) => l.level === "error")).toEqual([]);
  });

  it("records SemVer build metadata with '_' for '+', as OCI tags do", async (t) => {
    const f = await start(t, version, [
      pullRule({ version: "1.2.3+build.5" }),
      { verb: "install", stdoutFile: fixture(major, "install.json") },
    ]);
    await f.cli.install(installOpts({ chart: { ref: "oci://127.0.0.1:5000/charts/podinfo" } }));
    const install = (await f.calls("run")).find((r) => r.verb === "install")!;
    expect(install.argv[install.argv.indexOf("--labels") + 1]).toMatch(/,paas-chart-version=1\.2\.3_build\.5,/);
    // The recorded output says 6.13.0: helm installed something else than the labels say.
    expect(f.logs.find((l) => l.level === "error")).toMatchObject({
      obj: { recorded: "1.2.3+build.5", installed: "6.13.0" },
    });
  });

  it("records no digest when helm printed none for an OCI chart, and says so", async (t) => {
    const f = await start(t, version, [
      { verb: "pull", stdout: "Pulled: somewhere\n" },
      { verb: "install", stdoutFile: fixture(major, "install-oci.json") },
    ]);
    const release = await f.cli.install(
      installOpts({ chart: { ref: "oci://127.0.0.1:5000/charts/podinfo", version: "6.13.0" } }),
    );
    expect(release.chartDigest).toBeUndefined();
    const install = (await f.calls("run")).find((r) => r.verb === "install")!;
    expect(install.argv[install.argv.indexOf("--labels") + 1]).toBe(
      "paas-chart-sha256-0=,paas-chart-sha256-1=,paas-chart-version=6.13.0,paas.example/tenant=t1",
    );
    expect(f.logs.some((l) => l.level === "warn" && l.msg?.startsWith("helm pull reported no digest"))).toBe(true);
  });

  it("a chart that cannot be pulled or read is reported as such and never installed", async (t) => {
    const f = await start(t, version, [
      {
        verb: "pull",
        stderr: 'Error: chart "podinfo" version "9.9.9" not found in http://charts.example/ repository\n',
        exitCode: 1,
        maxUses: 1,
      },
      {
        verb: "pull",
        stderr: "Error: Could not locate a version matching provided version string >=9\n",
        exitCode: 1,
        maxUses: 1,
      },
      pullRule({ chartYaml: "apiVersion: v2\nname: podinfo\n" }),
    ]);
    const nothing = await start(t, version, [pullRule({ write: false })]);
    expect(await rejection(nothing.cli.install(installOpts()))).toMatchObject({
      kind: "internal",
      message: "helm pull did not leave exactly one chart archive",
    });
    expect((await nothing.calls("run")).map((r) => r.verb)).toEqual(["version", "pull"]);
    expect(
      await rejection(
        f.cli.install(installOpts({ chart: { ref: "podinfo", version: "9.9.9", repoUrl: "http://charts.example/" } })),
      ),
    ).toMatchObject({
      kind: "not_found",
      message: "Chart podinfo 9.9.9 not found",
    });
    expect(
      await rejection(
        f.cli.upgrade(upgradeOpts({ chart: { ref: "podinfo", version: ">=9", repoUrl: "http://charts.example/" } })),
      ),
    ).toMatchObject({
      kind: "not_found",
      message: "Chart podinfo >=9 not found",
    });
    expect(await rejection(f.cli.install(installOpts()))).toMatchObject({
      kind: "invalid_argument",
      message: "The chart archive cannot be read: its Chart.yaml has no name or version",
    });
    expect((await f.calls("run")).map((r) => r.verb)).toEqual(["version", "pull", "pull", "pull"]);
  });

  it("gives every chart-fetching run a fresh helm home of its own, removed afterwards", async (t) => {
    const f = await start(t, version, [
      { verb: "install", stdoutFile: fixture(major, "install.json") },
      { verb: "upgrade", stdoutFile: fixture(major, "upgrade.json") },
      { verb: "list", stdout: "[]" },
    ]);
    await f.cli.install(installOpts());
    await f.cli.upgrade(upgradeOpts());
    await f.cli.list("ws-a");
    const runs = await f.calls("run");
    const install = runs.find((r) => r.verb === "install")!;
    const upgrade = runs.find((r) => r.verb === "upgrade")!;
    const list = runs.find((r) => r.verb === "list")!;
    for (const key of ["HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"]) {
      expect(install.env[key]).not.toBe(upgrade.env[key]);
      expect(install.env[key]).not.toBe(list.env[key]);
      expect(existsSync(install.env[key] ?? "")).toBe(false);
      expect(existsSync(upgrade.env[key] ?? "")).toBe(false);
    }
    // Plugins (only the render guard is ever there) still come from the client's own home.
    expect(install.env.HELM_PLUGINS).toBe(upgrade.env.HELM_PLUGINS);
    expect(install.env.HELM_PLUGINS?.startsWith(list.env.HELM_DATA_HOME ?? "-")).toBe(true);
  });

  it("upgrade sends --reset-then-reuse-values and parses its output", async (t) => {
    const f = await start(t, version, [{ verb: "upgrade", stdoutFile: fixture(major, "upgrade.json") }]);
    const release = await f.cli.upgrade(upgradeOpts());
    const [run] = (await f.calls("run")).filter((r) => r.verb === "upgrade");
    expect(run?.argv).toEqual([
      "upgrade",
      "web",
      expect.stringMatching(/\/podinfo-6\.14\.1\.tgz$/),
      "--namespace",
      "ws-a",
      "--output",
      "json",
      "--timeout",
      "60s",
      "--values",
      run?.values?.path,
      "--labels",
      "paas-chart-sha256-0=,paas-chart-sha256-1=,paas-chart-version=6.14.1",
      "--reset-then-reuse-values",
    ]);
    expect(release).toMatchObject({ revision: 2, status: "deployed", chartVersion: "6.14.1" });
    // The recorded output: old values merged with the new ones by helm.
    expect(release.values).toEqual({ replicaCount: 1, ui: { message: "hello from v2" } });
  });

  it("rollback and uninstall pass name, revision, namespace and timeout", async (t) => {
    const f = await start(t, version);
    await f.cli.rollback({ namespace: "ws-a", name: "web", revision: 1, wait: true, timeoutSeconds: 45 });
    await f.cli.uninstall({ namespace: "ws-a", name: "web", timeoutSeconds: 0 });
    const runs = (await f.calls("run")).filter((r) => r.verb !== "version");
    expect(runs.map((r) => r.argv)).toEqual([
      ["rollback", "web", "1", "--namespace", "ws-a", "--timeout", "45s", "--wait"],
      // timeoutSeconds 0 falls back to the client default (300 s).
      ["uninstall", "web", "--namespace", "ws-a", "--timeout", "300s"],
    ]);
  });

  it("get merges helm status (notes, values) with helm get metadata (chart)", async (t) => {
    const f = await start(t, version, [
      { verb: "status", stdoutFile: fixture(major, "status.json") },
      { verb: "get metadata", stdoutFile: fixture(major, "metadata.json") },
    ]);
    const release = await f.cli.get("ws-a", "web");
    const runs = (await f.calls("run")).filter((r) => r.verb !== "version");
    expect(runs.map((r) => r.verb).sort()).toEqual(["get metadata", "status"]);
    expect(release.chart).toBe("podinfo");
    expect(release.chartVersion).toMatch(/^6\.1[34]\.\d+$/);
    expect(release.notes).not.toBe("");
    expect(release.values).not.toEqual({});
  });

  it("get re-reads the status of the metadata's revision when a write landed in between", async (t) => {
    const meta = JSON.stringify({
      name: "web",
      chart: "podinfo",
      version: "6.14.1",
      appVersion: "6.14.1",
      namespace: "ws-a",
      revision: 9,
      status: "deployed",
      deployedAt: "",
    });
    const status = (rev: number) =>
      JSON.stringify({
        name: "web",
        namespace: "ws-a",
        version: rev,
        info: { status: "deployed", notes: `rev ${rev}` },
      });
    const f = await start(t, version, [
      { verb: "status", match: ["--revision 9"], stdout: status(9) },
      { verb: "status", stdout: status(8) },
      { verb: "get metadata", stdout: meta },
    ]);
    const release = await f.cli.get("ws-a", "web");
    expect(release).toMatchObject({ revision: 9, notes: "rev 9", chartVersion: "6.14.1" });
  });

  it("history and list parse the recorded outputs", async (t) => {
    const f = await start(t, version, [
      { verb: "history", stdoutFile: fixture(major, "history.json") },
      { verb: "list", stdoutFile: fixture(major, "list.json") },
    ]);
    const history = await f.cli.history("ws-a", "web");
    expect(history.map((h) => [h.revision, h.status])).toEqual([
      [1, "superseded"],
      [2, "deployed"],
    ]);
    const list = await f.cli.list("ws-a");
    expect(list.length).toBeGreaterThan(0);
    expect(list[0]).toMatchObject({ chart: "podinfo", values: {}, notes: "" });
    expect(list[0]?.updated).toBeInstanceOf(Date);
  });

  it("isolates the environment: no inherited HELM_*, secret driver, private homes and an empty cwd", async (t) => {
    const f = await start(t, version, [{ verb: "list", stdout: "[]" }], {
      parentEnv: {
        ...process.env,
        HELM_DRIVER: "configmap",
        HELM_NAMESPACE: "kube-system",
        HELM_KUBECONTEXT: "prod",
        HELM_DEBUG: "true",
      },
    });
    await f.cli.list("ws-a");
    const run = (await f.calls("run")).find((r) => r.verb === "list");
    expect(Object.keys(run?.env ?? {}).sort()).toEqual([
      "HELM_CACHE_HOME",
      "HELM_CONFIG_HOME",
      "HELM_DATA_HOME",
      "HELM_DRIVER",
    ]);
    expect(run?.env.HELM_DRIVER).toBe("secret");
    for (const key of ["HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"])
      expect(run?.env[key]?.startsWith(f.dir)).toBe(true);
    expect(run?.cwd.startsWith(f.dir)).toBe(true);
    expect(readdirSync(run?.cwd ?? "")).toEqual([]);
    expect(run?.kubeconfig).toBe("/etc/paas/kubeconfig");
  });

  it("classifies failures end to end and logs sanitized stderr", async (t) => {
    const f = await start(t, version, [
      { verb: "status", stderr: "Error: release: not found\n", exitCode: 1 },
      { verb: "get metadata", stderr: "Error: release: not found\n", exitCode: 1 },
      {
        verb: "install",
        stderr: `Error: INSTALLATION FAILED: cannot ${major === 3 ? "re-use" : "reuse"} a name that is still in use\n`,
        exitCode: 1,
      },
      {
        verb: "upgrade",
        stderr: "Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress\n",
        exitCode: 1,
      },
      // Unclassified (no object named: an invalid object is INVALID_ARGUMENT), with a value echoed.
      { verb: "rollback", stderr: 'Error: something unexpected: Invalid value: "hunter2"\n', exitCode: 1 },
    ]);
    expect(await rejection(f.cli.get("ws-a", "web"))).toMatchObject({
      kind: "not_found",
      message: "Release web not found in namespace ws-a",
    });
    expect(await rejection(f.cli.install(installOpts()))).toMatchObject({ kind: "already_exists" });
    expect(await rejection(f.cli.upgrade(upgradeOpts()))).toMatchObject({ kind: "conflict" });
    const internal = await rejection(
      f.cli.rollback({ namespace: "ws-a", name: "web", revision: 0, wait: false, timeoutSeconds: 5 }),
    );
    expect(internal).toMatchObject({ kind: "internal", message: "helm rollback failed" });
    const warn = f.logs.find((l) => l.level === "warn" && l.msg === "helm rollback failed");
    expect(warn?.obj).toMatchObject({
      exitCode: 1,
      kind: "internal",
      stderr: expect.stringContaining("Invalid value: <redacted>"),
    });
    expect(JSON.stringify(f.logs)).not.toContain("hunter2");
    // Values files are deleted after failures too.
    expect(readdirSync(f.dir).filter((n) => n.startsWith("paas-helm-values-"))).toEqual([]);
  });

  it("cancellation sends SIGTERM: install records its outcome and exits by itself", async (t) => {
    const f = await start(t, version, [{ verb: "install", delayMs: 10_000 }]);
    const controller = new AbortController();
    const started = Date.now();
    const installing = f.cli.install(installOpts({ signal: controller.signal }));
    await f.started("install");
    controller.abort();
    const err = await rejection(installing);
    expect(err.kind).toBe("unavailable");
    expect(Date.now() - started).toBeLessThan(5000);
    const terminated = await f.calls("terminated");
    expect(terminated).toEqual([expect.objectContaining({ verb: "install", signal: "SIGTERM" })]);
    // helm's own exit code after trapping SIGTERM, not a SIGKILL.
    expect(f.logs.find((l) => l.msg === "helm install failed")?.obj).toMatchObject({
      exitCode: 1,
      aborted: true,
      signal: undefined,
    });
  });

  it("cancellation of a verb that does not trap SIGTERM ends it with SIGTERM, never SIGKILL", async (t) => {
    const f = await start(t, version, [{ verb: "rollback", delayMs: 10_000 }]);
    // A deadline: the signal's reason is a TimeoutError.
    const controller = new AbortController();
    const rollingBack = f.cli.rollback({
      namespace: "ws-a",
      name: "web",
      revision: 0,
      wait: false,
      timeoutSeconds: 30,
      signal: controller.signal,
    });
    await f.started("rollback");
    controller.abort(new DOMException("deadline", "TimeoutError"));
    const err = await rejection(rollingBack);
    expect(err).toMatchObject({ kind: "timeout", message: "helm rollback of release web exceeded its deadline" });
    expect(await f.calls("terminated")).toHaveLength(1);
    expect(f.logs.find((l) => l.msg === "helm rollback failed")?.obj).toMatchObject({
      exitCode: null,
      signal: "SIGTERM",
    });
  });

  it("never starts helm for an already aborted signal", async (t) => {
    const f = await start(t, version);
    const err = await rejection(
      f.cli.uninstall({ namespace: "ws-a", name: "web", timeoutSeconds: 5, signal: AbortSignal.abort() }),
    );
    expect(err.kind).toBe("unavailable");
    expect((await f.calls("run")).filter((r) => r.verb === "uninstall")).toEqual([]);
  });

  it("runs calls concurrently", async (t) => {
    const f = await start(t, version, [{ verb: "history", delayMs: 700, stdout: "[]" }]);
    await f.cli.version();
    const started = Date.now();
    await Promise.all([f.cli.history("ws-a", "a"), f.cli.history("ws-a", "b"), f.cli.history("ws-b", "c")]);
    expect(Date.now() - started).toBeLessThan(1800);
  });
});

describe.concurrent("helm cli setup", () => {
  it("stops a hung helm with SIGTERM after --timeout plus grace", async (t) => {
    const f = await start(t, "v4.3.1", [{ verb: "uninstall", delayMs: 10_000 }], { graceSeconds: 0 });
    await f.cli.version();
    const err = await rejection(f.cli.uninstall({ namespace: "ws-a", name: "web", timeoutSeconds: 2 }));
    expect(err).toMatchObject({ kind: "timeout", message: "helm uninstall of release web timed out" });
    expect(await f.calls("terminated")).toHaveLength(1);
  });

  it("reports a missing binary and retries detection on the next call", async (t) => {
    const f = await start(t, "v4.3.1", [], { binary: "/nonexistent/helm" });
    expect(await rejection(f.cli.version())).toMatchObject({
      kind: "internal",
      message: "helm version could not be run",
    });
    expect(await rejection(f.cli.version())).toMatchObject({ kind: "internal" });
  });

  it("rejects helm 2 and unknown output", async (t) => {
    const f = await start(t, "v2.17.0");
    expect(await rejection(f.cli.list("ws-a"))).toMatchObject({ kind: "failed_precondition" });
  });

  it("close removes the private helm home", async (t) => {
    const f = await start(t, "v4.3.1");
    await f.cli.version();
    expect(readdirSync(f.dir).some((n) => n.startsWith("paas-helm-home-"))).toBe(true);
    await f.cli.close();
    expect(readdirSync(f.dir).some((n) => n.startsWith("paas-helm-home-"))).toBe(false);
  });

  it("falls back to reading the release when install output is not JSON", async (t) => {
    const f = await start(t, "v4.3.1", [
      { verb: "install", stdout: "garbage" },
      { verb: "status", stdoutFile: fixture(4, "status.json") },
      { verb: "get metadata", stdoutFile: fixture(4, "metadata.json") },
    ]);
    const release = await f.cli.install(installOpts());
    expect(release.chart).toBe("podinfo");
  });
});

// Archives built here byte by byte: ustar headers, GNU long names and PAX paths.
function tarHeader(name: string, size: number, type = "0", prefix = ""): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "latin1");
  h.write("0000644\0", 100);
  h.write(`${size.toString(8).padStart(11, "0")}\0`, 124);
  h.write("        ", 148);
  h.write(type, 156);
  h.write("ustar\0", 257);
  h.write("00", 263);
  h.write(prefix, 345, 155, "latin1");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return h;
}
function tarFile(name: string, data: string, type = "0", prefix = ""): Buffer {
  const body = Buffer.from(data);
  return Buffer.concat([
    tarHeader(name, body.length, type, prefix),
    body,
    Buffer.alloc((512 - (body.length % 512)) % 512),
  ]);
}
async function archive(t: TestContext, ...entries: Buffer[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "chart-archive-test-"));
  t.onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "chart.tgz");
  await writeFile(path, gzipSync(Buffer.concat([...entries, Buffer.alloc(1024)])));
  return path;
}
const CHART_YAML = "apiVersion: v2\nname: web\nversion: 1.10\nappVersion: '2'\n";

describe.concurrent("chart archives", () => {
  it("reads name and version of <top>/Chart.yaml as strings, ignoring subcharts and other files", async (t) => {
    const path = await archive(
      t,
      tarFile("web/charts/sub/Chart.yaml", "name: sub\nversion: 9.9.9\n"),
      tarFile("web/templates/big.yaml", "x".repeat(5000)),
      tarFile("web/Chart.yaml", CHART_YAML),
    );
    // "1.10" stays "1.10" (not the number 1.1), as helm reads it.
    expect(await readChartArchive(path)).toEqual({ name: "web", version: "1.10" });
  });

  it("finds Chart.yaml behind a GNU long name, a PAX path or a ustar prefix", async (t) => {
    const long = await archive(
      t,
      tarFile("././@LongLink", "web/Chart.yaml\0", "L"),
      tarFile("web/Chart.y", CHART_YAML),
    );
    expect((await readChartArchive(long)).version).toBe("1.10");
    const pax = await archive(
      t,
      tarFile("PaxHeader", "22 path=web/Chart.yaml\n", "x"),
      tarFile("web/ignored", CHART_YAML),
    );
    expect((await readChartArchive(pax)).name).toBe("web");
    const prefixed = await archive(t, tarFile("Chart.yaml", CHART_YAML, "0", "web"));
    expect((await readChartArchive(prefixed)).name).toBe("web");
  });

  it("lists the CRD files of crds/, its subcharts' (directories and archives) too, with their kinds", async (t) => {
    const crd = (kind: string, plural: string) =>
      `apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: ${plural}.example.com\nspec:\n  group: example.com\n  names:\n    kind: ${kind}\n    plural: ${plural}\n`;
    const sub = gzipSync(
      Buffer.concat([
        tarFile("db/Chart.yaml", "name: db\nversion: 1.0.0\n"),
        tarFile("db/crds/backups.yaml", crd("Backup", "backups")),
        Buffer.alloc(1024),
      ]),
    );
    const subTar = Buffer.concat([
      tarHeader("web/charts/db-1.0.0.tgz", sub.length),
      sub,
      Buffer.alloc((512 - (sub.length % 512)) % 512),
    ]);
    const path = await archive(
      t,
      tarFile("web/Chart.yaml", CHART_YAML),
      tarFile("web/crds/widgets.yaml", `${crd("Widget", "widgets")}---\n${crd("Gadget", "gadgets")}`),
      tarFile("web/crds/README.md", "not a manifest"),
      tarFile("web/charts/cache/crds/keys.json", "{not yaml"),
      tarFile("web/templates/crds/note.yaml", crd("Nope", "nopes")),
      subTar,
    );
    expect(await readChartArchive(path)).toEqual({
      name: "web",
      version: "1.10",
      crds: [
        "crds/widgets.yaml (Widget.example.com, Gadget.example.com)",
        "charts/cache/crds/keys.json",
        "charts/db-1.0.0/crds/backups.yaml (Backup.example.com)",
      ],
    });
  });

  it("refuses what is not a chart archive", async (t) => {
    const noChart = await archive(t, tarFile("web/values.yaml", "a: 1\n"));
    await expect(readChartArchive(noChart)).rejects.toMatchObject({
      kind: "invalid_argument",
      message: "The chart archive cannot be read: it has no Chart.yaml",
    });
    const noVersion = await archive(t, tarFile("web/Chart.yaml", "name: web\n"));
    await expect(readChartArchive(noVersion)).rejects.toMatchObject({
      message: "The chart archive cannot be read: its Chart.yaml has no name or version",
    });
    const plain = join(dirname(noChart), "plain.tgz");
    await writeFile(plain, "not gzip at all");
    await expect(readChartArchive(plain)).rejects.toMatchObject({
      message: "The chart archive cannot be read: it is not a gzipped tar archive",
    });
    await expect(readChartArchive(join(dirname(noChart), "missing.tgz"))).rejects.toMatchObject({
      kind: "invalid_argument",
    });
  });
});
