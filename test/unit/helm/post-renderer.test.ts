import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PaasError } from "../../../src/errors.ts";
import { createHelmHome, type HelmHome, removeHelmHome } from "../../../src/helm/env.ts";
import { GUARD_NAME, guardScript, installRenderGuard, withRenderGuard } from "../../../src/helm/post-renderer.ts";
import type { GuardPolicy } from "../../../src/helm/render-guard.ts";

// How the guard is plugged into helm (v3: an executable; v4: a postrenderer/v1 plugin),
// and the guard process itself, run the way helm runs it: manifests on stdin, the run
// file as its argument, a report file for the verdict (v4 drops a plugin's stderr).

const POLICY: GuardPolicy = {
  namespace: "paas-ws-a",
  scopes: {
    "v1/ConfigMap": true,
    "rbac.authorization.k8s.io/v1/ClusterRole": false,
    "networking.k8s.io/v1/NetworkPolicy": true,
  },
  podSecurity: "restricted",
  drop: ["networking.k8s.io/NetworkPolicy"],
};

let dir: string;
let home: HelmHome;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "guard-test-"));
  home = await createHelmHome(dir);
});
afterEach(async () => {
  await removeHelmHome(home);
  await rm(dir, { recursive: true, force: true });
});

function runScript(
  script: string,
  args: string[],
  stdin: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(script, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("error", reject);
    p.on("close", (code) => resolve({ code, stdout, stderr }));
    p.stdin.end(stdin);
  });
}

describe("installRenderGuard", () => {
  it("v3: an executable script in the private home; --post-renderer is its path", async () => {
    const flag = await installRenderGuard(home, 3);
    expect(flag).toBe(join(home.root, "bin", GUARD_NAME));
    expect((await stat(flag)).mode & 0o777).toBe(0o700);
    expect(await readFile(flag, "utf8")).toBe(
      guardScript(process.execPath, undefined, join(home.root, "node-compile-cache")),
    );
    expect(existsSync(join(home.data, "plugins"))).toBe(false);
  });

  it("v4: a postrenderer/v1 plugin in $HELM_DATA_HOME/plugins; --post-renderer is its name", async () => {
    const flag = await installRenderGuard(home, 4);
    expect(flag).toBe(GUARD_NAME);
    const pluginDir = join(home.data, "plugins", GUARD_NAME);
    expect((await readdir(pluginDir)).sort()).toEqual([GUARD_NAME, "plugin.yaml"]);
    expect(JSON.parse(await readFile(join(pluginDir, "plugin.yaml"), "utf8"))).toMatchObject({
      apiVersion: "v1",
      name: GUARD_NAME,
      type: "postrenderer/v1",
      runtime: "subprocess",
      runtimeConfig: { platformCommand: [{ command: `\${HELM_PLUGIN_DIR}/${GUARD_NAME}` }] },
    });
  });

  it("quotes paths for the shell, and keeps node's compile cache in the private home", () => {
    expect(guardScript("/opt/no'de", "/a b/main.ts")).toBe(`#!/bin/sh\nexec '/opt/no'\\''de' '/a b/main.ts' "$@"\n`);
    expect(guardScript("/n", "/m.ts", "/h/c")).toBe(
      `#!/bin/sh\nNODE_COMPILE_CACHE='/h/c'\nexport NODE_COMPILE_CACHE\nexec '/n' '/m.ts' "$@"\n`,
    );
  });
});

describe("the guard process", () => {
  const cm = "---\n# Source: c/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n";
  const np =
    "---\n# Source: c/templates/np.yaml\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: netpol}\n";
  const cr = "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: evil}\n";

  it("passes manifests through, drops NetworkPolicies, reports", async () => {
    const script = await installRenderGuard(home, 3);
    const { value, report } = await withRenderGuard(
      POLICY,
      script,
      async (flags) => {
        expect(flags.slice(0, 3)).toEqual(["--post-renderer", script, "--post-renderer-args"]);
        return runScript(script, [flags[3]!], cm + np);
      },
      { parentDir: dir },
    );
    expect(value).toEqual({ code: 0, stdout: cm, stderr: "" });
    expect(report).toEqual({
      refused: [],
      dropped: [{ apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", name: "netpol", namespace: "" }],
      unknownKind: false,
    });
    // The run's private directory is gone.
    expect((await readdir(dir)).filter((f) => f.startsWith("paas-helm-guard-"))).toEqual([]);
  });

  it("refuses with exit 1; the helm failure becomes FAILED_PRECONDITION naming the object", async () => {
    const script = await installRenderGuard(home, 3);
    let unknown = 0;
    const helmError = new PaasError("internal", "helm install failed");
    const err = await withRenderGuard(
      POLICY,
      script,
      async (flags) => {
        const r = await runScript(
          script,
          [flags[3]!],
          cm + cr + "---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
        );
        expect(r.code).toBe(1);
        expect(r.stdout).toBe("");
        expect(r.stderr).toContain('paas-render-guard: refused: ClusterRole "evil"');
        throw helmError;
      },
      { parentDir: dir, onUnknownKind: () => unknown++ },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PaasError);
    expect(err).toMatchObject({
      kind: "failed_precondition",
      message:
        'The chart was refused before anything was applied: ClusterRole "evil": ClusterRole is cluster-scoped: a release may only create objects in its own namespace "paas-ws-a" (and 1 more object)',
      cause: helmError,
    });
    expect(unknown).toBe(1);
  });

  it("leaves other failures alone (the guard did not refuse)", async () => {
    const helmError = new PaasError("timeout", "helm install timed out");
    await expect(
      withRenderGuard(POLICY, "unused", async () => Promise.reject(helmError), { parentDir: dir }),
    ).rejects.toBe(helmError);
  });

  it("runs through the v4 plugin script the same way", async () => {
    await installRenderGuard(home, 4);
    const script = join(home.data, "plugins", GUARD_NAME, GUARD_NAME);
    const runFile = join(dir, "run.json");
    await writeFile(runFile, JSON.stringify({ policy: POLICY, report: join(dir, "report.json") }));
    const r = await runScript(script, [runFile], cm);
    expect(r).toEqual({ code: 0, stdout: cm, stderr: "" });
  });

  it("exits 2 without its argument", async () => {
    const script = await installRenderGuard(home, 3);
    expect((await runScript(script, [], cm)).code).toBe(2);
  });
});
