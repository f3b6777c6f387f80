import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, realpathSync, writeFileSync, copyFileSync } from "node:fs";
import { createServer } from "node:net";
import { once } from "node:events";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, testbedEnv, uniqueNamespace, type ServerProcess } from "../support/testbed.ts";

// The TypeScript client package (clients/typescript/), installed with `npm install
// ./clients/typescript` into a scratch project outside the repository, run by that project's
// script (test/fixtures/clients/typescript-check.mjs) against the real server on the testbed.

const run = promisify(execFile);
const tb = testbedEnv();
const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
const core = kc.makeApiClient(k8s.CoreV1Api);
const PACKAGE = resolve("clients/typescript");
const READONLY_KEY = `ro-${"r".repeat(24)}`;

async function deadUrl(): Promise<string> {
  const srv = createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, "close");
  return `http://127.0.0.1:${port}`;
}

describe("TypeScript client package against the real server", () => {
  let server: ServerProcess;
  let project: string;
  const ns = uniqueNamespace("client-ts");

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "paas-keys-"));
    const keys = join(dir, "keys.json");
    writeFileSync(
      keys,
      JSON.stringify({ keys: [{ id: "reader", key: READONLY_KEY, namespaces: ["*"], verbs: ["read"] }] }),
    );
    server = await startServer({ API_KEYS_FILE: keys });
    project = mkdtempSync(join(tmpdir(), "paas-client-ts-"));
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "scratch", private: true, type: "module" }));
    await run("npm", ["install", "--no-audit", "--no-fund", PACKAGE], { cwd: project });
    copyFileSync("test/fixtures/clients/typescript-check.mjs", join(project, "check.mjs"));
  }, 180_000);

  afterAll(async () => {
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
    expect(await server?.stop()).toBe(0);
  });

  it("is installed as a package: its manifest, exports and built .js + .d.ts", () => {
    const installed = join(project, "node_modules/@paas-operator/client");
    expect(realpathSync(installed)).toBe(realpathSync(PACKAGE));
    const manifest = JSON.parse(readFileSync(join(project, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    expect(manifest.dependencies["@paas-operator/client"]).toMatch(/^file:/);
    const pkg = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as {
      exports: Record<string, Record<string, string>>;
    };
    expect(pkg.exports["."]).toEqual({ types: "./dist/index.d.ts", default: "./dist/index.js" });
    const dts = readFileSync(join(installed, "dist/index.d.ts"), "utf8");
    expect(dts).toContain("export declare function createPaasClient");
    expect(dts).toContain("export declare class PaasError");
  });

  it("health, namespace, install, get, a watch, operations, audit, typed errors and retries", async () => {
    const { stdout } = await run(process.execPath, ["check.mjs"], {
      cwd: project,
      timeout: 240_000,
      env: {
        PATH: process.env.PATH ?? "",
        PAAS_URL: server.baseUrl,
        PAAS_API_KEY: server.apiKey,
        PAAS_READONLY_KEY: READONLY_KEY,
        PAAS_NAMESPACE: ns,
        PAAS_CHART: "testbed/podinfo",
        PAAS_DEAD_URL: await deadUrl(),
      },
    });
    const out = JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
    console.log(`client steps, ms since start: ${JSON.stringify(out.ms)}`);
    expect(out.health).toBe("SERVING");
    expect(out.created).toBe(true);
    expect(out.installed).toMatchObject({ revision: 1 });
    expect(out.got).toEqual({ name: "web", revision: 1, status: "DEPLOYED", chartVersion: "6.13.0" });
    expect(out.watchError).toBeUndefined();
    expect((out.watch as number[]).length).toBe(2);
    expect(out.upgraded).toBe(2);
    expect(out.abortedWatch).toBe("CANCELLED");
    expect(out.operations).toEqual(expect.arrayContaining(["create-namespace", "install"]));
    expect(out.auditMethods).toEqual(expect.arrayContaining(["paas.v1.ReleaseService/InstallRelease"]));
    expect(out.notFound).toMatchObject({ paasError: true, code: 5, codeName: "NOT_FOUND", hasRequestId: true });
    expect(out.permissionDenied).toMatchObject({ paasError: true, code: 7, codeName: "PERMISSION_DENIED" });
    expect(out.reused).toMatchObject({
      paasError: true,
      codeName: "FAILED_PRECONDITION",
      reason: "IDEMPOTENCY_KEY_REUSED",
    });
    expect(out.deadRead).toMatchObject({ paasError: true, codeName: "UNAVAILABLE" });
    // retries: 2 → three attempts for a read and a keyed mutation, one for an unkeyed mutation.
    expect(out.attempts).toEqual({ read: 3, keyed: 3, unkeyed: 1 });
  }, 300_000);
});
