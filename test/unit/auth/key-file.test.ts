import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { KeyFileError, parseKeyFile } from "../../../src/auth/key-file.ts";
import { patternProblem } from "../../../src/auth/scopes.ts";

const PREFIX = "paas-ws-";
const KEY_A = "key-a-0123456789abcdef-secret";
const KEY_B = "key-b-0123456789abcdef-secret";
const hex = (s: string) => createHash("sha256").update(s).digest("hex");

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

describe("API_KEYS_FILE format", () => {
  it("reads plain keys (hashed at load) and SHA-256 hashes, with namespaces and verbs", () => {
    const keys = parseKeyFile(
      keyFile([
        { id: "team-a", key: KEY_A, namespaces: ["paas-ws-a"], verbs: ["read", "deploy"] },
        {
          id: "team-ops",
          key_sha256: hex(KEY_B).toUpperCase(),
          namespaces: ["paas-ws-team-*", "paas-ws-b"],
          verbs: ["*"],
        },
      ]),
      PREFIX,
    );
    expect(keys.map((k) => k.id)).toEqual(["team-a", "team-ops"]);
    expect(keys[0]!.digest.toString("hex")).toBe(hex(KEY_A));
    expect(keys[1]!.digest.toString("hex")).toBe(hex(KEY_B));
    expect([...keys[0]!.scope.verbs]).toEqual(["read", "deploy"]);
    expect([...keys[1]!.scope.verbs]).toEqual(["read", "deploy", "delete", "namespace-admin", "operate"]);
    expect(keys[1]!.scope.allowsNamespace("paas-ws-team-x")).toBe(true);
    expect(keys[1]!.scope.allowsNamespace("paas-ws-teamx")).toBe(false);
    expect(keys[1]!.scope.allowsNamespace("paas-ws-b")).toBe(true);
    expect(keys[1]!.scope.allowsNamespace("paas-ws-bb")).toBe(false);
    // A bare array works too, and so does an empty list.
    expect(
      parseKeyFile(JSON.stringify([{ id: "x", key: KEY_A, namespaces: ["*"], verbs: ["read"] }]), PREFIX),
    ).toHaveLength(1);
    expect(parseKeyFile('{"keys": []}', PREFIX)).toEqual([]);
  });

  it.each([
    ["broken JSON", `{"keys": [{"id": "a", "key": "${KEY_A}"`, /not valid JSON/],
    ["an unknown top-level field", '{"key": []}', /unknown top-level/],
    [
      "an unknown entry field",
      keyFile([{ id: "a", key: KEY_A, namespace: ["paas-ws-a"], verbs: ["read"] }]),
      /unknown field/,
    ],
    [
      "both key and key_sha256",
      keyFile([{ id: "a", key: KEY_A, key_sha256: hex(KEY_A), namespaces: ["*"], verbs: ["read"] }]),
      /exactly one/,
    ],
    ["neither key nor key_sha256", keyFile([{ id: "a", namespaces: ["*"], verbs: ["read"] }]), /exactly one/],
    ["a short key", keyFile([{ id: "a", key: "short-secret", namespaces: ["*"], verbs: ["read"] }]), /at least 16/],
    [
      "a key with a space",
      keyFile([{ id: "a", key: "with a space 0123456789", namespaces: ["*"], verbs: ["read"] }]),
      /printable/,
    ],
    ["a bad hash", keyFile([{ id: "a", key_sha256: "abc123", namespaces: ["*"], verbs: ["read"] }]), /64 hexadecimal/],
    ["a missing id", keyFile([{ key: KEY_A, namespaces: ["*"], verbs: ["read"] }]), /"id"/],
    ["a reserved id", keyFile([{ id: "anonymous", key: KEY_A, namespaces: ["*"], verbs: ["read"] }]), /reserved/],
    [
      "an id that looks like an unscoped key's",
      keyFile([{ id: "key-0a1b2c3d", key: KEY_A, namespaces: ["*"], verbs: ["read"] }]),
      /reserved/,
    ],
    [
      "a duplicate id",
      keyFile([
        { id: "a", key: KEY_A, namespaces: ["*"], verbs: ["read"] },
        { id: "a", key: KEY_B, namespaces: ["*"], verbs: ["read"] },
      ]),
      /twice/,
    ],
    [
      "the same key twice",
      keyFile([
        { id: "a", key: KEY_A, namespaces: ["*"], verbs: ["read"] },
        { id: "b", key_sha256: hex(KEY_A), namespaces: ["*"], verbs: ["read"] },
      ]),
      /same key/,
    ],
    ["no namespaces", keyFile([{ id: "a", key: KEY_A, namespaces: [], verbs: ["read"] }]), /namespaces/],
    [
      "a namespace outside the prefix",
      keyFile([{ id: "a", key: KEY_A, namespaces: ["kube-system"], verbs: ["read"] }]),
      /never match/,
    ],
    [
      "a malformed pattern",
      keyFile([{ id: "a", key: KEY_A, namespaces: ["paas-ws-*-x"], verbs: ["read"] }]),
      /namespaces\[0\] "paas-ws-\*-x" must be a namespace name/,
    ],
    ["no verbs", keyFile([{ id: "a", key: KEY_A, namespaces: ["*"], verbs: [] }]), /verbs/],
    [
      "an unknown verb",
      keyFile([{ id: "a", key: KEY_A, namespaces: ["*"], verbs: ["write"] }]),
      /verbs\[0\] "write" is not a verb/,
    ],
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
    for (const ok of ["*", "paas-ws-a", "paas-ws-team-*", "paas-ws-*", "paas-*", "p*"])
      expect(patternProblem(ok, PREFIX)).toBeUndefined();
    for (const bad of ["paas-ws-", "default", "kube-*", "paas-wsx*", "PAAS-WS-A", "paas-ws-a*b", "**", ""])
      expect(patternProblem(bad, PREFIX)).toBeDefined();
  });
});
