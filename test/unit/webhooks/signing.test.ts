import { createHmac, randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { signHeaders } from "../../../src/webhooks/signing.ts";

const secret = () => `whsec_${randomBytes(32).toString("base64")}`;

describe("signHeaders (Standard Webhooks 1.0)", () => {
  it("signs id.timestamp.body with HMAC-SHA256 of the base64-decoded secret, as the spec says", () => {
    const s = secret();
    const at = new Date();
    const body = JSON.stringify({ type: "operation.succeeded", data: { id: "op-1", note: "ü" } });
    const h = signHeaders("msg_abc", at, body, [s]);
    expect(h["webhook-id"]).toBe("msg_abc");
    expect(h["webhook-timestamp"]).toBe(String(Math.floor(at.getTime() / 1000)));
    const key = Buffer.from(s.slice("whsec_".length), "base64");
    const mac = createHmac("sha256", key).update(`msg_abc.${h["webhook-timestamp"]}.${body}`).digest("base64");
    expect(h["webhook-signature"]).toBe(`v1,${mac}`);
    // The reference library verifies it unchanged.
    expect(new Webhook(s).verify(body, h)).toEqual(JSON.parse(body));
  });

  it("signs with every secret (space-separated); a receiver with either verifies, a wrong one does not", () => {
    const [a, b, c] = [secret(), secret(), secret()];
    const body = '{"type":"operation.failed"}';
    const h = signHeaders("msg_rot", new Date(), body, [a, b]);
    expect(h["webhook-signature"].split(" ")).toHaveLength(2);
    expect(() => new Webhook(a).verify(body, h)).not.toThrow();
    expect(() => new Webhook(b).verify(body, h)).not.toThrow();
    expect(() => new Webhook(c).verify(body, h)).toThrow(/No matching signature/);
    // A changed body fails.
    expect(() => new Webhook(a).verify(body.replace("failed", "succeeded"), h)).toThrow();
  });

  it("keeps the id across attempts and changes timestamp and signature", () => {
    const s = secret();
    const body = "{}";
    const first = signHeaders("msg_same", new Date(Date.now() - 10_000), body, [s]);
    const second = signHeaders("msg_same", new Date(), body, [s]);
    expect(second["webhook-id"]).toBe(first["webhook-id"]);
    expect(second["webhook-timestamp"]).not.toBe(first["webhook-timestamp"]);
    expect(second["webhook-signature"]).not.toBe(first["webhook-signature"]);
  });

  it("refuses to sign without a secret", () => {
    expect(() => signHeaders("msg", new Date(), "{}", [])).toThrow(/no secret/);
  });
});
