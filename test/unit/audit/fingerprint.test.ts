import { describe, expect, it } from "vitest";
import { canonicalJson, sha256Hex, valuesDigest } from "../../../src/audit/fingerprint.ts";

describe("canonicalJson", () => {
  it("sorts keys at every level and has no whitespace", () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: "x y" } })).toBe(
      '{"a":{"c":"x y","d":[3,{"y":2,"z":1}]},"b":1}',
    );
  });

  it("gives equal text for equal values built in another order", () => {
    const a = { image: { tag: "1.0", repository: "nginx" }, replicas: 2, env: ["A", "B"] };
    const b = { replicas: 2, env: ["A", "B"], image: { repository: "nginx", tag: "1.0" } };
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(canonicalJson({ env: ["B", "A"] })).not.toBe(canonicalJson({ env: ["A", "B"] }));
  });

  it("follows JSON.stringify for primitives, undefined, toJSON and escapes", () => {
    expect(canonicalJson(null)).toBe("null");
    expect(canonicalJson(undefined)).toBe("null");
    expect(canonicalJson('é\n"')).toBe(JSON.stringify('é\n"'));
    expect(canonicalJson({ a: undefined, b: null, c: [undefined, Number.NaN] })).toBe('{"b":null,"c":[null,null]}');
    expect(canonicalJson({ t: new Date(0) })).toBe('{"t":"1970-01-01T00:00:00.000Z"}');
    expect(canonicalJson({ "\u00e9": 1, z: 2, A: 3 })).toBe('{"A":3,"z":2,"\u00e9":1}');
  });

  it("refuses bigints and cycles", () => {
    expect(() => canonicalJson({ n: 1n })).toThrow(TypeError);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => canonicalJson(cyclic)).toThrow(TypeError);
    // A shared (not cyclic) object is fine.
    const shared = { x: 1 };
    expect(canonicalJson({ a: shared, b: shared })).toBe('{"a":{"x":1},"b":{"x":1}}');
  });
});

describe("sha256Hex / valuesDigest", () => {
  it("hashes UTF-8 text to lowercase hex", () => {
    expect(sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(sha256Hex("é")).toBe(sha256Hex(Buffer.from("c3a9", "hex").toString("utf8")));
  });

  it("is empty without values and the hash of the canonical JSON otherwise", () => {
    expect(valuesDigest(undefined)).toBe("");
    expect(valuesDigest(null)).toBe("");
    expect(valuesDigest({})).toBe("");
    expect(valuesDigest({ b: 1, a: 2 })).toBe(sha256Hex('{"a":2,"b":1}'));
    expect(valuesDigest({ a: 2, b: 1 })).toBe(valuesDigest({ b: 1, a: 2 }));
    expect(valuesDigest({ a: 1 })).toMatch(/^[0-9a-f]{64}$/);
  });
});
