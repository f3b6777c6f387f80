import { describe, expect, it } from "vitest";
import { decodePageToken, encodePageToken } from "../../../src/audit/page-token.ts";
import { PaasError } from "../../../src/errors.ts";

describe("page tokens", () => {
  it("round-trip a position as an opaque base64url string", () => {
    const pos = { timeMs: Date.UTC(2030, 0, 1), id: "0190aabbccdd0123456789abcdef" };
    const token = encodePageToken(pos);
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodePageToken(token)).toEqual(pos);
  });

  it("reject anything malformed with invalid_argument", () => {
    const b64 = (s: string) => Buffer.from(s).toString("base64url");
    for (const token of [
      "",
      "a+b/",
      "%%%",
      b64("{"),
      b64("null"),
      b64('{"v":1,"t":1.5,"i":"x"}'),
      b64('{"v":1,"t":1,"i":5}'),
      b64('{"t":1,"i":"x"}'),
    ]) {
      let err: unknown;
      try {
        decodePageToken(token);
      } catch (e) {
        err = e;
      }
      expect(err, token).toBeInstanceOf(PaasError);
      expect((err as PaasError).kind).toBe("invalid_argument");
    }
  });
});
