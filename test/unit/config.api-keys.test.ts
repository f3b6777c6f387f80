import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.ts";

const KEY_A = "key-a-0123456789abcdef-secret";
const KEY_B = "key-b-0123456789abcdef-secret";

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "keys-"));
}

function keyFile(keys: unknown[]): string {
  return JSON.stringify({ keys });
}

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
