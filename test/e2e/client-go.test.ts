import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, testbedEnv, uniqueNamespace, type ServerProcess } from "../support/testbed.ts";

// The Go client module (clients/go/): `go vet` clean, then required by a scratch module (a
// replace directive to the repository's clients/go) whose program,
// test/fixtures/clients/go_check/main.go, runs against the real server on the testbed.

const run = promisify(execFile);
const tb = testbedEnv();
const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
const core = kc.makeApiClient(k8s.CoreV1Api);
const MODULE = resolve("clients/go");
const READONLY_KEY = `ro-${"g".repeat(24)}`;

describe("Go client module against the real server", () => {
  let server: ServerProcess;
  let project: string;
  const ns = uniqueNamespace("client-go");

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "paas-keys-"));
    const keys = join(dir, "keys.json");
    writeFileSync(
      keys,
      JSON.stringify({ keys: [{ id: "reader", key: READONLY_KEY, namespaces: ["*"], verbs: ["read"] }] }),
    );
    server = await startServer({ API_KEYS_FILE: keys });
    project = mkdtempSync(join(tmpdir(), "paas-client-go-"));
    writeFileSync(
      join(project, "go.mod"),
      `module scratch\n\ngo 1.26\n\nrequire paas-operator/clients/go v0.0.0\n\nreplace paas-operator/clients/go => ${MODULE}\n`,
    );
    copyFileSync("test/fixtures/clients/go_check/main.go", join(project, "main.go"));
    await run("go", ["mod", "tidy"], { cwd: project, timeout: 300_000 });
    await run("go", ["build", "-o", "check", "."], { cwd: project, timeout: 300_000 });
  }, 600_000);

  afterAll(async () => {
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
    expect(await server?.stop()).toBe(0);
  });

  it("go vet finds nothing in the module", async () => {
    const { stdout, stderr } = await run("go", ["vet", "./..."], { cwd: MODULE, timeout: 300_000 });
    expect(stdout + stderr).toBe("");
  }, 300_000);

  it("health, namespace, install, get, a watch, operations, audit and typed errors", async () => {
    const { stdout } = await run(join(project, "check"), [], {
      timeout: 240_000,
      env: {
        PATH: process.env.PATH ?? "",
        PAAS_ADDR: `127.0.0.1:${server.port}`,
        PAAS_API_KEY: server.apiKey,
        PAAS_READONLY_KEY: READONLY_KEY,
        PAAS_NAMESPACE: ns,
        PAAS_CHART: "testbed/podinfo",
      },
    });
    const out = JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
    expect(out.health).toBe("SERVING");
    expect(out.created).toBe(true);
    expect(out.installed).toBe(1);
    expect(out.got).toEqual({ name: "web", revision: 1, status: "RELEASE_STATUS_DEPLOYED" });
    expect((out.watch as string[]).length).toBe(2);
    expect(out.upgraded).toBe(2);
    expect(out.not_found).toEqual({ typed: true, code: "not_found", reason: "" });
    expect(out.reused).toEqual({ typed: true, code: "failed_precondition", reason: "IDEMPOTENCY_KEY_REUSED" });
    expect(out.permission_denied).toMatchObject({ typed: true, code: "permission_denied" });
    expect(out.operations as number).toBeGreaterThanOrEqual(3);
    expect(out.audit as number).toBeGreaterThanOrEqual(3);
  }, 300_000);
});
