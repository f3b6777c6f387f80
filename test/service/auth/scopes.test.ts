import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, describe, expect, it } from "vitest";
import { listen, type Listener } from "../../../src/server/listener.ts";
import { API_KEY, createHarness, managedNamespace } from "../../support/harness.ts";
import { failure } from "../../support/failure.ts";

// Named, scoped API keys (API_KEYS_FILE) on the real request path over fake adapters.

const READER_A = "reader-a-0123456789abcdef";
const DEPLOYER_A = "deployer-a-0123456789abcdef";
const ADMIN_TEAM = "admin-team-0123456789abcdef";
const ALL_VERBS_A = "all-verbs-a-0123456789abcdef";

const KEYS = [
  { id: "reader-a", key: READER_A, namespaces: ["paas-ws-a"], verbs: ["read"] },
  { id: "deployer-a", key: DEPLOYER_A, namespaces: ["paas-ws-a"], verbs: ["read", "deploy"] },
  { id: "admin-team", key: ADMIN_TEAM, namespaces: ["paas-ws-team-*"], verbs: ["*"] },
  {
    id: "all-verbs-a",
    key: ALL_VERBS_A,
    namespaces: ["paas-ws-a"],
    verbs: ["read", "deploy", "delete", "namespace-admin"],
  },
];

const listeners: Listener[] = [];
type Harness = Awaited<ReturnType<typeof createHarness>>;
const harnesses: Harness[] = [];
afterAll(() => {
  for (const l of listeners) {
    l.stopAccepting();
    l.closeAll();
  }
  for (const h of harnesses) h.app.keys.close();
});

function writeKeys(keys: unknown[], dir = mkdtempSync(join(tmpdir(), "scopes-"))): string {
  const file = join(dir, "keys.json");
  writeFileSync(file, JSON.stringify({ keys }));
  return file;
}

/** setup: a harness with the scoped keys, the unscoped API_KEY, and three tenants with releases. */
async function setup(overrides: Parameters<typeof createHarness>[0] = {}) {
  const h = await createHarness({ apiKeysFile: writeKeys(KEYS), ...overrides });
  harnesses.push(h);
  for (const ns of ["paas-ws-a", "paas-ws-b", "paas-ws-team-x", "paas-ws-team-y"]) managedNamespace(h.cluster, ns);
  await h.releases.installRelease({ namespace: "paas-ws-a", name: "web", chart: "oci://r.example/c/nginx" });
  await h.releases.installRelease({ namespace: "paas-ws-b", name: "web", chart: "oci://r.example/c/nginx" });
  h.helm.calls = [];
  h.kube.calls = [];
  return h;
}

async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream) void _;
}

const sideEffects = (h: Harness) => ({ helm: h.helm.verbs(), kube: h.kube.calls.filter((c) => c !== "ping") });

describe("verbs", () => {
  it("a read-only key may read but not install: PERMISSION_DENIED before any side effect", async () => {
    const h = await setup();
    const reader = h.clients(READER_A);
    expect((await reader.releases.getRelease({ namespace: "paas-ws-a", name: "web" })).release?.name).toBe("web");
    h.kube.calls = [];
    const err = await failure(
      reader.releases.installRelease({ namespace: "paas-ws-a", name: "new", chart: "oci://r.example/c/nginx" }),
    );
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.rawMessage).toBe('API key "reader-a" may not call InstallRelease: it lacks the "deploy" verb');
    for (const call of [
      reader.releases.upgradeRelease({ namespace: "paas-ws-a", name: "web" }),
      reader.releases.rollbackRelease({ namespace: "paas-ws-a", name: "web" }),
      reader.releases.uninstallRelease({ namespace: "paas-ws-a", name: "web" }),
      reader.namespaces.createNamespace({ name: "paas-ws-a" }),
      reader.namespaces.deleteNamespace({ name: "paas-ws-a" }),
    ]) {
      expect((await failure(call)).code).toBe(Code.PermissionDenied);
    }
    expect(sideEffects(h)).toEqual({ helm: [], kube: [] });
  });

  it("deploy covers install, upgrade and rollback but not uninstall or namespaces", async () => {
    const h = await setup();
    const deployer = h.clients(DEPLOYER_A);
    await deployer.releases.installRelease({ namespace: "paas-ws-a", name: "new", chart: "oci://r.example/c/nginx" });
    await deployer.releases.upgradeRelease({ namespace: "paas-ws-a", name: "new", values: { a: 1 } });
    await deployer.releases.rollbackRelease({ namespace: "paas-ws-a", name: "new" });
    expect(h.helm.verbs()).toEqual(["install", "upgrade", "rollback"]);
    expect((await failure(deployer.releases.uninstallRelease({ namespace: "paas-ws-a", name: "new" }))).code).toBe(
      Code.PermissionDenied,
    );
    expect((await failure(deployer.namespaces.deleteNamespace({ name: "paas-ws-a" }))).code).toBe(
      Code.PermissionDenied,
    );
    // create_namespace creates a namespace: it needs namespace-admin as well.
    const err = await failure(
      deployer.releases.installRelease({
        namespace: "paas-ws-a",
        name: "other",
        chart: "oci://r.example/c/nginx",
        createNamespace: true,
      }),
    );
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.rawMessage).toContain('"namespace-admin"');
    expect(h.helm.verbs()).toEqual(["install", "upgrade", "rollback"]);
  });

  it("a key with every verb uninstalls, and creates and deletes its own namespaces", async () => {
    const h = await setup();
    const admin = h.clients(ALL_VERBS_A);
    await admin.releases.uninstallRelease({ namespace: "paas-ws-a", name: "web" });
    await admin.releases.installRelease({
      namespace: "paas-ws-a",
      name: "web",
      chart: "oci://r.example/c/nginx",
      createNamespace: true,
    });
    await admin.namespaces.createNamespace({ name: "paas-ws-a", cpuLimit: "3" });
    await admin.namespaces.deleteNamespace({ name: "paas-ws-a" });
    expect(h.cluster.namespaces.has("paas-ws-a")).toBe(false);
  });

  it("the unscoped API_KEY keeps every verb in every namespace", async () => {
    const h = await setup();
    await h.releases.uninstallRelease({ namespace: "paas-ws-b", name: "web" });
    await h.namespaces.createNamespace({ name: "paas-ws-new" });
    expect((await h.namespaces.listNamespaces({})).namespaces.map((n) => n.name).sort()).toEqual([
      "paas-ws-a",
      "paas-ws-b",
      "paas-ws-new",
      "paas-ws-team-x",
      "paas-ws-team-y",
    ]);
  });
});

describe("namespaces", () => {
  it("a key scoped to paas-ws-a lists only paas-ws-a; a pattern key lists its matches", async () => {
    const h = await setup();
    expect((await h.clients(READER_A).namespaces.listNamespaces({})).namespaces.map((n) => n.name)).toEqual([
      "paas-ws-a",
    ]);
    expect((await h.clients(ADMIN_TEAM).namespaces.listNamespaces({})).namespaces.map((n) => n.name).sort()).toEqual([
      "paas-ws-team-x",
      "paas-ws-team-y",
    ]);
  });

  it("another tenant's release answers exactly as a release that does not exist, without a lookup", async () => {
    const h = await setup();
    const reader = h.clients(READER_A);
    const asks = [
      ["paas-ws-b", "web"], // exists, another tenant's
      ["paas-ws-b", "ghost"], // namespace exists, release does not
    ] as const;
    const answers = [];
    for (const [namespace, name] of asks) {
      for (const call of [
        () => reader.releases.getRelease({ namespace, name }),
        () => reader.releases.getReleaseStatus({ namespace, name }),
        () => reader.releases.listReleaseRevisions({ namespace, name }),
      ]) {
        const err = await failure(call());
        answers.push([err.code, err.rawMessage]);
      }
    }
    expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
    expect(answers[0]).toEqual([Code.PermissionDenied, `namespace "paas-ws-b" is outside this API key's scope`]);
    // A namespace that does not exist at all answers the same way (only the name differs).
    const missing = await failure(reader.releases.getRelease({ namespace: "paas-ws-zzz", name: "web" }));
    expect([missing.code, missing.rawMessage]).toEqual([
      Code.PermissionDenied,
      `namespace "paas-ws-zzz" is outside this API key's scope`,
    ]);
    const ns = await failure(reader.namespaces.getNamespace({ name: "paas-ws-b" }));
    const nsMissing = await failure(reader.namespaces.getNamespace({ name: "paas-ws-zzz" }));
    expect([ns.code, nsMissing.code]).toEqual([Code.PermissionDenied, Code.PermissionDenied]);
    expect(sideEffects(h)).toEqual({ helm: [], kube: [] });
  });

  it("refuses every call into another tenant's namespace before any side effect, and watches too", async () => {
    const h = await setup();
    const deployer = h.clients(DEPLOYER_A);
    for (const call of [
      deployer.releases.installRelease({ namespace: "paas-ws-b", name: "x", chart: "oci://r.example/c/nginx" }),
      deployer.releases.upgradeRelease({ namespace: "paas-ws-b", name: "web" }),
      deployer.releases.rollbackRelease({ namespace: "paas-ws-b", name: "web" }),
      deployer.releases.listReleases({ namespace: "paas-ws-b" }),
      drain(deployer.releases.watchReleaseStatus({ namespace: "paas-ws-b", name: "web" })),
    ]) {
      expect((await failure(call)).code).toBe(Code.PermissionDenied);
    }
    expect(sideEffects(h)).toEqual({ helm: [], kube: [] });
    // Its own namespace works, streams included.
    await drain(deployer.releases.watchReleaseStatus({ namespace: "paas-ws-a", name: "web" }));
    expect((await deployer.releases.listReleases({ namespace: "paas-ws-a" })).releases.map((r) => r.name)).toEqual([
      "web",
    ]);
  });

  it("prefix and format checks still come first: outside the prefix and malformed names keep their answers", async () => {
    const h = await setup();
    const reader = h.clients(READER_A);
    const outside = await failure(reader.releases.getRelease({ namespace: "kube-system", name: "web" }));
    expect([outside.code, outside.rawMessage]).toEqual([
      Code.PermissionDenied,
      'namespace "kube-system" is outside the managed prefix "paas-ws-"',
    ]);
    expect((await failure(reader.releases.getRelease({ namespace: "paas-ws-A", name: "web" }))).code).toBe(
      Code.InvalidArgument,
    );
  });
});

describe("identity, authentication and reloads", () => {
  it("logs the key's id as the caller, never the key", async () => {
    const h = await setup();
    await h.clients(READER_A).releases.getRelease({ namespace: "paas-ws-a", name: "web" });
    await failure(h.clients(READER_A).releases.getRelease({ namespace: "paas-ws-b", name: "web" }));
    expect(h.logs.text).toContain('"caller":"reader-a"');
    expect(h.logs.text).not.toContain(READER_A);
    for (const k of KEYS) expect(h.logs.text).not.toContain(k.key);
  });

  it("missing and wrong keys are UNAUTHENTICATED; health stays public", async () => {
    const h = await setup();
    expect((await failure(h.clients(null).releases.getRelease({ namespace: "paas-ws-a", name: "web" }))).code).toBe(
      Code.Unauthenticated,
    );
    expect((await failure(h.clients("wrong-key-0123456789abcdef").namespaces.listNamespaces({}))).code).toBe(
      Code.Unauthenticated,
    );
    expect((await h.clients(null).health.check({ service: "" })).status).toBe(1);
  });

  it("a key removed from the file is refused after the reload; a broken file keeps the previous keys", async () => {
    const dir = mkdtempSync(join(tmpdir(), "scopes-reload-"));
    const file = writeKeys(KEYS, dir);
    const h = await setup({ apiKeysFile: file, apiKeysReloadDebounceMs: 30 });
    await new Promise((r) => setTimeout(r, 100));
    const reader = h.clients(READER_A);
    expect((await reader.releases.getRelease({ namespace: "paas-ws-a", name: "web" })).release?.name).toBe("web");
    // Revoke reader-a.
    writeKeys(
      KEYS.filter((k) => k.id !== "reader-a"),
      dir,
    );
    let code: Code | "ok" = "ok";
    for (let i = 0; i < 100 && code === "ok"; i++) {
      await new Promise((r) => setTimeout(r, 20));
      code = await reader.releases.getRelease({ namespace: "paas-ws-a", name: "web" }).then(
        () => "ok" as const,
        (e) => ConnectError.from(e).code,
      );
    }
    expect(code).toBe(Code.Unauthenticated);
    // A broken rewrite: deployer-a keeps working, the error is logged without keys.
    writeFileSync(file, '{"keys": [');
    for (let i = 0; i < 100 && !h.logs.text.includes("keeping the previous keys"); i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(h.logs.text).toContain("keeping the previous keys");
    expect(
      (await h.clients(DEPLOYER_A).releases.getRelease({ namespace: "paas-ws-a", name: "web" })).release?.name,
    ).toBe("web");
    expect((await failure(reader.releases.getRelease({ namespace: "paas-ws-a", name: "web" }))).code).toBe(
      Code.Unauthenticated,
    );
    // The unscoped key never depended on the file.
    expect((await h.releases.getRelease({ namespace: "paas-ws-b", name: "web" })).release?.name).toBe("web");
    for (const k of KEYS) expect(h.logs.text).not.toContain(k.key);
  });

  it("an empty key file with no other key refuses everyone (it is not development mode)", async () => {
    const h = await createHarness({ apiKeys: [], apiKeysFile: writeKeys([]) });
    harnesses.push(h);
    expect((await failure(h.clients(null).namespaces.listNamespaces({}))).code).toBe(Code.Unauthenticated);
    expect((await failure(h.clients(API_KEY).namespaces.listNamespaces({}))).code).toBe(Code.Unauthenticated);
  });

  it("without any key source every caller is anonymous with every right (ALLOW_UNAUTHENTICATED)", async () => {
    const h = await createHarness({ apiKeys: [] });
    managedNamespace(h.cluster, "paas-ws-a");
    expect((await h.clients(null).namespaces.listNamespaces({})).namespaces.map((n) => n.name)).toEqual(["paas-ws-a"]);
    expect(h.logs.text).toContain('"caller":"anonymous"');
  });
});

describe("REST with scoped keys", () => {
  it("filters GET /api/namespaces and answers 403 for another tenant's release, 401 for a wrong key", async () => {
    const h = await setup();
    const server = await listen(h.app.handler, "127.0.0.1", 0);
    listeners.push(server);
    const get = async (path: string, key: string) => {
      const res = await fetch(`http://127.0.0.1:${server.port}${path}`, { headers: { "x-api-key": key } });
      return { status: res.status, json: (await res.json()) as Record<string, unknown> };
    };
    const list = await get("/api/namespaces", READER_A);
    expect(list.status).toBe(200);
    expect((list.json.namespaces as Array<{ name: string }>).map((n) => n.name)).toEqual(["paas-ws-a"]);
    expect((await get("/api/releases/paas-ws-a/web", READER_A)).status).toBe(200);
    const other = await get("/api/releases/paas-ws-b/web", READER_A);
    const ghost = await get("/api/releases/paas-ws-b/ghost", READER_A);
    expect(other.status).toBe(403);
    expect([ghost.status, ghost.json.detail]).toEqual([other.status, other.json.detail]);
    expect((await get("/api/releases/paas-ws-a/web", "wrong-key-0123456789abcdef")).status).toBe(401);
  });
});
