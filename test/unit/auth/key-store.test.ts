import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { KeyStore } from "../../../src/auth/key-store.ts";
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

/** until polls `cond` every 20 ms for up to `ms`. */
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

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
