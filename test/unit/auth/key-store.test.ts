import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { OperationService } from "../../../gen/paas/v1/operation_pb.js";
import { AuditService } from "../../../gen/paas/v1/audit_pb.js";
import { NamespaceService } from "../../../gen/paas/v1/namespace_pb.js";
import { ReleaseService } from "../../../gen/paas/v1/release_pb.js";
import { KeyFileError, parseKeyFile } from "../../../src/auth/key-file.ts";
import { KeyStore } from "../../../src/auth/key-store.ts";
import { patternProblem, RPC_RULES, Scope } from "../../../src/auth/scopes.ts";
import { ConfigError, loadConfig } from "../../../src/config.ts";
import { LogLines } from "../../support/harness.ts";

const PREFIX = "paas-ws-";
const KEY_A = "key-a-0123456789abcdef-secret";
const KEY_B = "key-b-0123456789abcdef-secret";
const hex = (s: string) => createHash("sha256").update(s).digest("hex");

const stores: KeyStore[] = [];
afterEach(() => {
  while (stores.length > 0) stores.pop()!.close();
});

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "keys-"));
}

function keyFile(keys: unknown[]): string {
  return JSON.stringify({ keys });
}

function problem(text: string): string {
  try {
    parseKeyFile(text, PREFIX);
    return "ok";
  } catch (err) {
    if (!(err instanceof KeyFileError)) throw err;
    return err.message;
  }
}

/** until polls `cond` every 20 ms for up to `ms`. */
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("API_KEYS_FILE format", () => {
  it("reads plain keys (hashed at load) and SHA-256 hashes, with namespaces and verbs", () => {
    const keys = parseKeyFile(
      keyFile([
        { id: "team-a", key: KEY_A, namespaces: ["paas-ws-a"], verbs: ["read", "deploy"] },
        { id: "team-ops", key_sha256: hex(KEY_B).toUpperCase(), namespaces: ["paas-ws-team-*", "paas-ws-b"], verbs: ["*"] },
      ]),
      PREFIX,
    );
    expect(keys.map((k) => k.id)).toEqual(["team-a", "team-ops"]);
    expect(keys[0]!.digest.toString("hex")).toBe(hex(KEY_A));
    expect(keys[1]!.digest.toString("hex")).toBe(hex(KEY_B));
    expect([...keys[0]!.scope.verbs]).toEqual(["read", "deploy"]);
    expect([...keys[1]!.scope.verbs]).toEqual(["read", "deploy", "delete", "namespace-admin"]);
    expect(keys[1]!.scope.allowsNamespace("paas-ws-team-x")).toBe(true);
    expect(keys[1]!.scope.allowsNamespace("paas-ws-teamx")).toBe(false);
    expect(keys[1]!.scope.allowsNamespace("paas-ws-b")).toBe(true);
    expect(keys[1]!.scope.allowsNamespace("paas-ws-bb")).toBe(false);
    // A bare array works too, and so does an empty list.
    expect(parseKeyFile(JSON.stringify([{ id: "x", key: KEY_A, namespaces: ["*"], verbs: ["read"] }]), PREFIX)).toHaveLength(1);
    expect(parseKeyFile('{"keys": []}', PREFIX)).toEqual([]);
  });

  it.each([
    ["broken JSON", `{"keys": [{"id": "a", "key": "${KEY_A}"`, /not valid JSON/],
    ["an unknown top-level field", '{"key": []}', /unknown top-level/],
    ["an unknown entry field", keyFile([{ id: "a", key: KEY_A, namespace: ["paas-ws-a"], verbs: ["read"] }]), /unknown field/],
    ["both key and key_sha256", keyFile([{ id: "a", key: KEY_A, key_sha256: hex(KEY_A), namespaces: ["*"], verbs: ["read"] }]), /exactly one/],
    ["neither key nor key_sha256", keyFile([{ id: "a", namespaces: ["*"], verbs: ["read"] }]), /exactly one/],
    ["a short key", keyFile([{ id: "a", key: "short-secret", namespaces: ["*"], verbs: ["read"] }]), /at least 16/],
    ["a key with a space", keyFile([{ id: "a", key: "with a space 0123456789", namespaces: ["*"], verbs: ["read"] }]), /printable/],
    ["a bad hash", keyFile([{ id: "a", key_sha256: "abc123", namespaces: ["*"], verbs: ["read"] }]), /64 hexadecimal/],
    ["a missing id", keyFile([{ key: KEY_A, namespaces: ["*"], verbs: ["read"] }]), /"id"/],
    ["a reserved id", keyFile([{ id: "anonymous", key: KEY_A, namespaces: ["*"], verbs: ["read"] }]), /reserved/],
    ["an id that looks like an unscoped key's", keyFile([{ id: "key-0a1b2c3d", key: KEY_A, namespaces: ["*"], verbs: ["read"] }]), /reserved/],
    ["a duplicate id", keyFile([{ id: "a", key: KEY_A, namespaces: ["*"], verbs: ["read"] }, { id: "a", key: KEY_B, namespaces: ["*"], verbs: ["read"] }]), /twice/],
    ["the same key twice", keyFile([{ id: "a", key: KEY_A, namespaces: ["*"], verbs: ["read"] }, { id: "b", key_sha256: hex(KEY_A), namespaces: ["*"], verbs: ["read"] }]), /same key/],
    ["no namespaces", keyFile([{ id: "a", key: KEY_A, namespaces: [], verbs: ["read"] }]), /namespaces/],
    ["a namespace outside the prefix", keyFile([{ id: "a", key: KEY_A, namespaces: ["kube-system"], verbs: ["read"] }]), /never match/],
    ["a malformed pattern", keyFile([{ id: "a", key: KEY_A, namespaces: ["paas-ws-*-x"], verbs: ["read"] }]), /namespaces\[0\] "paas-ws-\*-x" must be a namespace name/],
    ["no verbs", keyFile([{ id: "a", key: KEY_A, namespaces: ["*"], verbs: [] }]), /verbs/],
    ["an unknown verb", keyFile([{ id: "a", key: KEY_A, namespaces: ["*"], verbs: ["write"] }]), /verbs\[0\] "write" is not a verb/],
  ])("refuses %s with a reason", (_what, text, reason) => {
    expect(problem(text)).toMatch(reason);
  });

  it("never puts a key or a key hash into a message", () => {
    const secret = "super-secret-key-value-0123456789";
    const texts = [
      `{"keys": [{"id": "a", "key": "${secret}", broken`,
      keyFile([{ id: "a", key: secret, namespaces: ["kube-system"], verbs: ["read"] }]),
      keyFile([{ id: "a", key: secret, namespaces: ["*"], verbs: [secret] }]),
      keyFile([{ id: "a", key: secret, namespaces: [secret], verbs: ["read"] }]),
      keyFile([{ id: "a", key_sha256: hex(secret), namespaces: ["*"], verbs: [hex(secret)] }]),
      keyFile([{ id: "a", key: secret, namespaces: ["*"], verbs: ["read"], [secret]: 1 }]),
      JSON.stringify({ [secret]: [] }),
    ];
    for (const text of texts) {
      const message = problem(text);
      expect(message).not.toBe("ok");
      expect(message).not.toContain(secret);
      expect(message).not.toContain(hex(secret));
      expect(message).not.toContain("super-secret");
    }
  });

  it("namespace patterns must be able to match under the prefix", () => {
    for (const ok of ["*", "paas-ws-a", "paas-ws-team-*", "paas-ws-*", "paas-*", "p*"]) expect(patternProblem(ok, PREFIX)).toBeUndefined();
    for (const bad of ["paas-ws-", "default", "kube-*", "paas-wsx*", "PAAS-WS-A", "paas-ws-a*b", "**", ""]) expect(patternProblem(bad, PREFIX)).toBeDefined();
  });
});

describe("RPC_RULES", () => {
  it("gives every RPC of the protected services a verb: Get*, List*, Watch* read; the rest by the issue's table", () => {
    const expected: Record<string, string> = {
      InstallRelease: "deploy",
      UpgradeRelease: "deploy",
      RollbackRelease: "deploy",
      RecoverRelease: "deploy",
      UninstallRelease: "delete",
      CreateNamespace: "namespace-admin",
      DeleteNamespace: "namespace-admin",
      // Needs read to see the operation; the handler checks the operation's own verb too.
      CancelOperation: "read",
      WaitOperation: "read",
    };
    const methods = [...ReleaseService.methods, ...NamespaceService.methods, ...OperationService.methods, ...AuditService.methods].map((m) => `${m.parent.typeName}/${m.name}`);
    expect(Object.keys(RPC_RULES).sort()).toEqual([...methods].sort());
    for (const rpc of methods) {
      const name = rpc.split("/")[1]!;
      const verb = expected[name] ?? (/^(Get|List|Watch)/.test(name) ? "read" : "?");
      expect(RPC_RULES[rpc]!.verb, rpc).toBe(verb);
      // Every call but the two lists that span namespaces names its namespace (those filter their answer).
      expect(RPC_RULES[rpc]!.namespaceField === undefined, rpc).toBe(name === "ListNamespaces" || name === "ListAuditEvents" || rpc.startsWith("paas.v1.OperationService/"));
    }
    expect(RPC_RULES["paas.v1.ReleaseService/InstallRelease"]!.also?.({ createNamespace: true })).toBe("namespace-admin");
    expect(RPC_RULES["paas.v1.ReleaseService/InstallRelease"]!.also?.({ createNamespace: false })).toBeUndefined();
  });

  it("Scope.ALL is unrestricted, Scope.NONE allows nothing", () => {
    expect(Scope.ALL.unrestricted).toBe(true);
    expect(Scope.ALL.allowsNamespace("paas-ws-anything")).toBe(true);
    expect(Scope.NONE.allowsNamespace("paas-ws-a")).toBe(false);
    expect(Scope.NONE.allowsVerb("read")).toBe(false);
    expect(new Scope(["*"], ["read"]).unrestricted).toBe(false);
  });
});

describe("KeyStore", () => {
  it("identifies unscoped and scoped keys by id, and nothing else", () => {
    const dir = tempDir();
    const file = join(dir, "keys.json");
    writeFileSync(file, keyFile([{ id: "team-a", key: KEY_A, namespaces: ["paas-ws-a"], verbs: ["read"] }]));
    const store = new KeyStore({ staticKeys: ["static-key-0123456789abcdef"], file, prefix: PREFIX });
    stores.push(store);
    expect(store.open).toBe(false);
    expect(store.identify(KEY_A)).toMatchObject({ id: "team-a" });
    expect(store.identify(KEY_A)!.scope.allowsNamespace("paas-ws-b")).toBe(false);
    const s = store.identify("static-key-0123456789abcdef")!;
    expect(s.id).toBe(`key-${hex("static-key-0123456789abcdef").slice(0, 8)}`);
    expect(s.scope.unrestricted).toBe(true);
    expect(store.identify(KEY_B)).toBeUndefined();
    expect(store.identify("")).toBeUndefined();
    expect(store.identify(`${KEY_A} `)).toBeUndefined();
  });

  it("is open (anonymous) only without any key source; an empty key file is not open", () => {
    expect(new KeyStore({ staticKeys: [], prefix: PREFIX }).open).toBe(true);
    const dir = tempDir();
    const file = join(dir, "keys.json");
    writeFileSync(file, "[]");
    const store = new KeyStore({ staticKeys: [], file, prefix: PREFIX });
    stores.push(store);
    expect(store.open).toBe(false);
    expect(store.size).toBe(0);
  });

  it("refuses a key that is both unscoped and scoped", () => {
    const dir = tempDir();
    const file = join(dir, "keys.json");
    writeFileSync(file, keyFile([{ id: "team-a", key: KEY_A, namespaces: ["*"], verbs: ["read"] }]));
    expect(() => new KeyStore({ staticKeys: [KEY_A], file, prefix: PREFIX })).toThrow(/also configured/);
  });

  it("reloads on a file change seen through the directory watch, and keeps the old keys for a broken file", async () => {
    const dir = tempDir();
    const file = join(dir, "keys.json");
    writeFileSync(file, keyFile([{ id: "team-a", key: KEY_A, namespaces: ["*"], verbs: ["read"] }]));
    const logs = new LogLines();
    const store = new KeyStore({ staticKeys: [], file, prefix: PREFIX });
    stores.push(store);
    store.watch(pino({ level: "debug" }, logs), 30);
    await new Promise((r) => setTimeout(r, 100));
    writeFileSync(file, keyFile([{ id: "team-b", key: KEY_B, namespaces: ["*"], verbs: ["read"] }]));
    await until(() => store.identify(KEY_B) !== undefined);
    expect(store.identify(KEY_A)).toBeUndefined();
    expect(logs.text).toContain('"keys":["team-b"]');
    // Broken: the previous keys stay, the reason is logged, never the key.
    writeFileSync(file, `{"keys": [{"id": "team-c", "key": "${KEY_A}"`);
    await until(() => logs.text.includes("keeping the previous keys"));
    expect(store.identify(KEY_B)).toMatchObject({ id: "team-b" });
    expect(store.identify(KEY_A)).toBeUndefined();
    // Deleted: the same.
    rmSync(file);
    await until(() => logs.text.includes("cannot be read"));
    expect(store.identify(KEY_B)).toMatchObject({ id: "team-b" });
    expect(logs.text).not.toContain(KEY_A);
    expect(logs.text).not.toContain(KEY_B);
    expect(logs.text).not.toContain(hex(KEY_A));
  });

  it("follows a Kubernetes Secret volume update (atomic swap of the ..data symlink)", async () => {
    const dir = tempDir();
    // What the kubelet writes: ..<timestamp>/keys.json, ..data -> ..<timestamp>, keys.json -> ..data/keys.json
    const version = (name: string, keys: unknown[]) => {
      mkdirSync(join(dir, name));
      writeFileSync(join(dir, name, "keys.json"), keyFile(keys));
    };
    version("..2026_11_21_10_00_00.1", [{ id: "team-a", key: KEY_A, namespaces: ["*"], verbs: ["read"] }]);
    symlinkSync("..2026_11_21_10_00_00.1", join(dir, "..data"));
    symlinkSync("..data/keys.json", join(dir, "keys.json"));
    const store = new KeyStore({ staticKeys: [], file: join(dir, "keys.json"), prefix: PREFIX });
    stores.push(store);
    store.watch(pino({ level: "silent" }), 30);
    expect(store.identify(KEY_A)).toMatchObject({ id: "team-a" });
    await new Promise((r) => setTimeout(r, 100));
    version("..2026_11_21_10_05_00.2", [{ id: "team-b", key: KEY_B, namespaces: ["*"], verbs: ["read"] }]);
    symlinkSync("..2026_11_21_10_05_00.2", join(dir, "..data_tmp"));
    renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
    rmSync(join(dir, "..2026_11_21_10_00_00.1"), { recursive: true });
    await until(() => store.identify(KEY_B) !== undefined);
    expect(store.identify(KEY_A)).toBeUndefined();
  });

  it("debounces a burst of events into one reload", async () => {
    const dir = tempDir();
    const file = join(dir, "keys.json");
    writeFileSync(file, "[]");
    const logs = new LogLines();
    const store = new KeyStore({ staticKeys: [], file, prefix: PREFIX });
    stores.push(store);
    store.watch(pino({ level: "info" }, logs), 300);
    await new Promise((r) => setTimeout(r, 400));
    for (let i = 0; i < 10; i++) {
      writeFileSync(file, keyFile([{ id: `k${i}`, key: `${KEY_A}-${i}`, namespaces: ["*"], verbs: ["read"] }]));
    }
    await until(() => store.namedIds.length === 1 && store.namedIds[0] === "k9");
    await new Promise((r) => setTimeout(r, 500));
    expect(logs.lines.filter((l) => l.includes("API keys reloaded"))).toHaveLength(1);
  });
});

describe("API_KEYS_FILE configuration", () => {
  it("is a key source of its own; API_KEY keeps working beside it", () => {
    const dir = tempDir();
    const file = join(dir, "keys.json");
    writeFileSync(file, keyFile([{ id: "team-a", key: KEY_A, namespaces: ["paas-ws-a"], verbs: ["read"] }]));
    const c = loadConfig({ API_KEYS_FILE: file });
    expect(c.apiKeys).toEqual([]);
    expect(c.apiKeysFile).toBe(file);
    expect(c.namedKeys.map((k) => k.id)).toEqual(["team-a"]);
    expect(loadConfig({ API_KEYS_FILE: file, API_KEY: KEY_B }).apiKeys).toEqual([KEY_B]);
  });

  it("stops the start for a broken or unreadable file, or a key configured twice, without echoing keys", () => {
    const dir = tempDir();
    const file = join(dir, "keys.json");
    writeFileSync(file, `{"keys": [{"id": "a", "key": "${KEY_A}"}]}`);
    let message = "";
    try {
      loadConfig({ API_KEYS_FILE: file });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      message = (err as Error).message;
    }
    expect(message).toMatch(/API_KEYS_FILE .*exactly one|namespaces/);
    expect(message).not.toContain(KEY_A);
    expect(() => loadConfig({ API_KEYS_FILE: join(dir, "missing.json") })).toThrow(/cannot be read/);
    writeFileSync(file, keyFile([{ id: "a", key: KEY_A, namespaces: ["*"], verbs: ["read"] }]));
    expect(() => loadConfig({ API_KEYS_FILE: file, API_KEY: KEY_A })).toThrow(/also configured/);
    // Patterns are checked against the configured prefix.
    writeFileSync(file, keyFile([{ id: "a", key: KEY_A, namespaces: ["paas-ws-a"], verbs: ["read"] }]));
    expect(() => loadConfig({ API_KEYS_FILE: file, NAMESPACE_PREFIX: "tenant-" })).toThrow(/never match/);
  });
});
