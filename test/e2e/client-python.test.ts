import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, testbedEnv, uniqueNamespace, type ServerProcess } from "../support/testbed.ts";

// The Python client package (clients/python/), installed with `pip install ./clients/python`
// into a fresh virtualenv, run by test/fixtures/clients/python_check.py against the real server.

const run = promisify(execFile);
const tb = testbedEnv();
const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
const core = kc.makeApiClient(k8s.CoreV1Api);
const READONLY_KEY = `ro-${"p".repeat(24)}`;

describe("Python client package against the real server", () => {
  let server: ServerProcess;
  let venv: string;
  const ns = uniqueNamespace("client-py");

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "paas-keys-"));
    const keys = join(dir, "keys.json");
    writeFileSync(
      keys,
      JSON.stringify({ keys: [{ id: "reader", key: READONLY_KEY, namespaces: ["*"], verbs: ["read"] }] }),
    );
    server = await startServer({ API_KEYS_FILE: keys });
    venv = join(mkdtempSync(join(tmpdir(), "paas-client-py-")), "venv");
    await run("python3", ["-m", "venv", venv]);
    await run(join(venv, "bin/pip"), ["install", "-q", "--disable-pip-version-check", resolve("clients/python")], {
      timeout: 300_000,
    });
  }, 360_000);

  afterAll(async () => {
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
    expect(await server?.stop()).toBe(0);
  });

  it("installs into a fresh virtualenv as a package with its type stubs", async () => {
    const { stdout } = await run(join(venv, "bin/python"), [
      "-c",
      "import paas_client, os; d = os.path.dirname(paas_client.__file__); print(d); print(os.path.exists(os.path.join(d, '_gen/paas/v1/release_pb2.pyi')))",
    ]);
    const [dir, stubs] = stdout.trim().split("\n");
    expect(dir).toContain(join(venv, "lib"));
    expect(stubs).toBe("True");
  });

  it("health, namespace, install, get, a watch, operations and typed errors", async () => {
    const { stdout } = await run(join(venv, "bin/python"), [resolve("test/fixtures/clients/python_check.py")], {
      timeout: 240_000,
      env: {
        PATH: process.env.PATH ?? "",
        PAAS_TARGET: `127.0.0.1:${server.port}`,
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
    expect(out.operations).toEqual(expect.arrayContaining(["create-namespace", "install", "upgrade"]));
    expect(out.not_found).toEqual({ paas_error: true, code: "NOT_FOUND", reason: null, is_grpc_code: true });
    expect(out.reused).toMatchObject({
      paas_error: true,
      code: "FAILED_PRECONDITION",
      reason: "IDEMPOTENCY_KEY_REUSED",
    });
    expect(out.permission_denied).toMatchObject({ paas_error: true, code: "PERMISSION_DENIED" });
  }, 300_000);
});
