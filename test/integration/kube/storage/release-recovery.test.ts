import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApiException, CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { execa } from "execa";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKubeClient } from "../../../../src/kube/kube-client.ts";
import { type ReleaseRecovery, createReleaseRecovery } from "../../../../src/kube/storage/release-recovery.ts";
import type { KubeClient } from "../../../../src/kube/kube-types.ts";
import { ensureTenantRoles } from "../../../support/tenant-roles.ts";

// Stuck releases made for real: helm (v4 and v3) is SIGKILLed while it waits for pods that
// never become ready, as when the operator's pod dies mid-operation. The release stays
// pending-*, helm refuses to touch it, markPendingFailed repairs it (writing as the
// namespace's deployer, with its real RBAC), and real helm upgrades and rolls it back.
// Needs KUBECONFIG, HELM_BINARY, HELM_V3_BINARY and CHART_REPO_URL from .testbed/env.

const need = ["KUBECONFIG", "HELM_BINARY", "HELM_V3_BINARY", "CHART_REPO_URL"] as const;
const missing = need.filter((n) => !process.env[n]);
const env = process.env as Record<(typeof need)[number], string>;

const logger = pino({ level: process.env.LOG_LEVEL ?? "silent" });
const run = randomBytes(3).toString("hex");
const PREFIX = `paas-ws-rec-${run}-`;
const NS = `${PREFIX}a`;
const NEVER_READY = ["--set-string", "podAnnotations.testbed\\.paas\\.io/never-ready=true"];

let kube: KubeClient;
let core: CoreV1Api;
let recovery: ReleaseRecovery;
let helmHome: string;
const children = new Set<ChildProcess>();

function helmEnv(): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "",
    HOME: helmHome,
    KUBECONFIG: env.KUBECONFIG,
    HELM_CACHE_HOME: join(helmHome, "cache"),
    HELM_CONFIG_HOME: join(helmHome, "config"),
    HELM_DATA_HOME: join(helmHome, "data"),
    HELM_DRIVER: "secret",
  };
}

/** helm runs a helm command to completion. */
function helm(binary: string, ...args: string[]) {
  return execa(binary, [...args, "--namespace", NS], {
    env: helmEnv(),
    extendEnv: false,
    timeout: 150_000,
    reject: false,
  });
}

const chart = (version: string) => ["podinfo", "--repo", env.CHART_REPO_URL, "--version", version];

/** stuck starts `helm <args> --wait` on never-ready pods and SIGKILLs it once the pending record is stored. */
async function stuck(
  binary: string,
  release: string,
  args: string[],
  pending: string,
  revision: number,
): Promise<void> {
  const proc = spawn(binary, [...args, "--namespace", NS, "--wait", "--timeout", "5m", ...NEVER_READY], {
    env: helmEnv(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(proc);
  let output = "";
  proc.stdout!.on("data", (d) => (output += d));
  proc.stderr!.on("data", (d) => (output += d));
  const exited = once(proc, "exit");
  const deadline = Date.now() + 60_000;
  for (;;) {
    const stored = await kube.getStoredRelease(NS, release);
    if (stored?.release.revision === revision && stored.release.status === pending) break;
    if (proc.exitCode !== null)
      throw new Error(`helm exited (${proc.exitCode}) before ${release} was ${pending}: ${output}`);
    if (Date.now() > deadline) throw new Error(`${release} never became ${pending}: ${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // Let it get into its --wait (resources applied), then kill it as a crash would.
  await new Promise((r) => setTimeout(r, 500));
  expect(proc.exitCode, `helm finished on its own: ${output}`).toBeNull();
  proc.kill("SIGKILL");
  const [, signal] = (await exited) as [number | null, NodeJS.Signals | null];
  children.delete(proc);
  expect(signal).toBe("SIGKILL");
}

async function storageSecret(release: string, revision: number) {
  return core.readNamespacedSecret({ name: `sh.helm.release.v1.${release}.v${revision}`, namespace: NS });
}

async function history(
  binary: string,
  release: string,
): Promise<Array<{ revision: number; status: string; description: string }>> {
  const r = await helm(binary, "history", release, "-o", "json");
  expect(r.exitCode, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Array<{ revision: number; status: string; description: string }>;
}

beforeAll(async () => {
  if (missing.length > 0)
    throw new Error(
      `testbed variables missing: ${missing.join(", ")}. Run 'npm run testbed:up' and 'set -a; source .testbed/env; set +a'.`,
    );
  helmHome = mkdtempSync(join(tmpdir(), "paas-recovery-it-"));
  const kc = new KubeConfig();
  kc.loadFromDefault();
  core = kc.makeApiClient(CoreV1Api);
  await ensureTenantRoles(env.KUBECONFIG);
  // A tenant namespace as CreateNamespace provisions it: quota, deployer ServiceAccount and RoleBindings.
  kube = createKubeClient({ kubeConfig: kc, logger, podSecurity: "baseline" });
  await kube.ensureNamespace(NS, { cpu: "8", memory: "8Gi", storage: "1Gi" });
  recovery = createReleaseRecovery({ kubeConfig: kc, logger });
});

afterAll(async () => {
  for (const p of children) p.kill("SIGKILL");
  if (helmHome) rmSync(helmHome, { recursive: true, force: true });
  await core?.deleteNamespace({ name: NS }).catch((err: unknown) => {
    if (!(err instanceof ApiException && (err.code === 404 || err.code === 409))) throw err;
  });
});

describe.each([
  { label: "v4", binary: () => env.HELM_BINARY, release: "web4" },
  { label: "v3", binary: () => env.HELM_V3_BINARY, release: "web3" },
])("a release stuck in pending-upgrade by a killed helm $label", ({ binary, release }) => {
  it("is installed and deployed", async () => {
    const r = await helm(binary(), "install", release, ...chart("6.13.0"), "--wait", "--timeout", "2m");
    expect(r.exitCode, r.stderr).toBe(0);
    expect((await kube.getStoredRelease(NS, release))?.release.status).toBe("deployed");
  });

  it("stays pending-upgrade after helm is killed, and helm refuses to upgrade it", async () => {
    await stuck(binary(), release, ["upgrade", release, ...chart("6.14.1")], "pending-upgrade", 2);
    const stored = await kube.getStoredRelease(NS, release);
    expect(stored?.release).toMatchObject({ status: "pending-upgrade", revision: 2 });
    expect(stored?.release.pendingSince).toBeInstanceOf(Date);
    expect(Date.now() - stored!.release.pendingSince!.getTime()).toBeLessThan(120_000);
    const r = await helm(binary(), "upgrade", release, ...chart("6.14.1"));
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain("another operation (install/upgrade/rollback) is in progress");
  });

  it("is found by listPending", async () => {
    const pending = await recovery.listPending(PREFIX);
    expect(pending).toContainEqual({
      namespace: NS,
      release,
      revision: 2,
      status: "pending-upgrade",
      since: expect.any(Date),
    });
  });

  it("is marked failed by markPendingFailed, which helm then reads as its own", async () => {
    const before = await storageSecret(release, 2);
    const repaired = await recovery.markPendingFailed(
      NS,
      release,
      "Upgrade abandoned: the operator running it stopped",
    );
    expect(repaired).toMatchObject({ namespace: NS, release, revision: 2, status: "pending-upgrade" });
    expect(repaired!.since).toBeInstanceOf(Date);
    const after = await storageSecret(release, 2);
    expect(after.metadata!.resourceVersion).not.toBe(before.metadata!.resourceVersion);
    expect(after.metadata!.labels).toMatchObject({
      ...before.metadata!.labels,
      status: "failed",
      modifiedAt: expect.stringMatching(/^\d+$/),
    });
    // Our write (field manager from our User-Agent); the writer's identity is checked below (another namespace's deployer is refused).
    expect(after.metadata!.managedFields?.some((f) => f.manager === "paas-operator" && f.operation === "Update")).toBe(
      true,
    );
    const stored = await kube.getStoredRelease(NS, release);
    expect(stored?.release).toMatchObject({
      status: "failed",
      revision: 2,
      description: "Upgrade abandoned: the operator running it stopped",
      chartVersion: "6.14.1",
    });
    expect(stored?.release.pendingSince).toBeUndefined();
    const h = await history(binary(), release);
    expect(h.map((e) => [e.revision, e.status])).toEqual([
      [1, "deployed"],
      [2, "failed"],
    ]);
    expect(h[1]!.description).toBe("Upgrade abandoned: the operator running it stopped");
    expect((await recovery.listPending(PREFIX)).map((p) => p.release)).not.toContain(release);
  });

  it("then upgrades and rolls back with real helm", async () => {
    const up = await helm(binary(), "upgrade", release, ...chart("6.14.1"), "--wait", "--timeout", "2m");
    expect(up.exitCode, up.stderr).toBe(0);
    expect((await kube.getStoredRelease(NS, release))?.release).toMatchObject({
      status: "deployed",
      revision: 3,
      chartVersion: "6.14.1",
    });
    const back = await helm(binary(), "rollback", release, "1", "--wait", "--timeout", "2m");
    expect(back.exitCode, back.stderr).toBe(0);
    expect((await kube.getStoredRelease(NS, release))?.release).toMatchObject({
      status: "deployed",
      revision: 4,
      chartVersion: "6.13.0",
    });
    expect((await history(binary(), release)).map((e) => e.status)).toEqual([
      "superseded",
      "failed",
      "superseded",
      "deployed",
    ]);
  });
});

describe("a release stuck in pending-install", () => {
  const release = "fresh";

  it("is repaired and then upgraded by helm v4", async () => {
    await stuck(env.HELM_BINARY, release, ["install", release, ...chart("6.13.0")], "pending-install", 1);
    const refused = await helm(env.HELM_BINARY, "upgrade", release, ...chart("6.13.0"));
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stderr).toContain("another operation (install/upgrade/rollback) is in progress");
    expect(await recovery.listPending(PREFIX)).toContainEqual(
      expect.objectContaining({ namespace: NS, release, revision: 1, status: "pending-install" }),
    );

    const repaired = await recovery.markPendingFailed(
      NS,
      release,
      "Install abandoned: the operator running it stopped",
    );
    expect(repaired).toMatchObject({ release, revision: 1, status: "pending-install" });
    expect((await kube.getStoredRelease(NS, release))?.release.status).toBe("failed");

    // --reset-values: without values helm reuses those of the failed install (never-ready pods).
    const up = await helm(
      env.HELM_BINARY,
      "upgrade",
      release,
      ...chart("6.13.0"),
      "--reset-values",
      "--wait",
      "--timeout",
      "2m",
    );
    expect(up.exitCode, up.stderr).toBe(0);
    expect((await kube.getStoredRelease(NS, release))?.release).toMatchObject({ status: "deployed", revision: 2 });
  });
});

describe("markPendingFailed on a release that is not pending", () => {
  it("returns undefined and changes nothing (same resourceVersion)", async () => {
    // web4's newest revision is deployed by now.
    const before = await storageSecret("web4", 4);
    expect(before.metadata!.labels!["status"]).toBe("deployed");
    expect(await recovery.markPendingFailed(NS, "web4", "must not be written")).toBeUndefined();
    const after = await storageSecret("web4", 4);
    expect(after.metadata!.resourceVersion).toBe(before.metadata!.resourceVersion);
    expect(await recovery.markPendingFailed(NS, "no-such-release", "x")).toBeUndefined();
    expect((await recovery.listPending(PREFIX)).filter((p) => p.namespace === NS)).toEqual([]);
  });

  it("is refused for an identity without rights: the deployer of another namespace cannot write here", async () => {
    const kc = new KubeConfig();
    kc.loadFromDefault();
    const foreign = createReleaseRecovery({
      kubeConfig: kc,
      logger,
      writerFor: () => "system:serviceaccount:default:paas-deployer",
    });
    await expect(foreign.markPendingFailed(NS, "web4", "x")).rejects.toMatchObject({ kind: "permission_denied" });
  });
});
