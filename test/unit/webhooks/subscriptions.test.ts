import { mkdtempSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { matchesNamespace, parseWebhookFile, SubscriptionRegistry } from "../../../src/webhooks/subscriptions.ts";

const SECRET = `whsec_${randomBytes(32).toString("base64")}`;
const opts = { prefix: "paas-ws-", allowLoopback: false };
const entry = (over: Record<string, unknown> = {}) => ({
  id: "erp",
  url: "https://erp.example.com/hooks",
  secrets: [SECRET],
  events: ["operation.succeeded"],
  namespaces: ["paas-ws-acme", "paas-ws-team-*"],
  ...over,
});
const parse = (entries: unknown[], o = opts) => parseWebhookFile(JSON.stringify({ subscriptions: entries }), o);

describe("parseWebhookFile", () => {
  it("reads subscriptions (object or bare list)", () => {
    expect(parse([entry()])).toEqual([
      {
        id: "erp",
        url: "https://erp.example.com/hooks",
        secrets: [SECRET],
        events: ["operation.succeeded"],
        namespaces: ["paas-ws-acme", "paas-ws-team-*"],
      },
    ]);
    expect(parseWebhookFile(JSON.stringify([entry({ id: "b" })]), opts)[0]!.id).toBe("b");
  });

  it.each([
    ["not JSON", "{", /is not valid JSON/],
    ["no list", "{}", /must be/],
  ])("refuses a file that is %s", (_w, text, msg) => {
    expect(() => parseWebhookFile(text, opts)).toThrow(msg);
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ["a bad id", { id: "Bad Id" }, /subscription 0: "id" must be/],
    ["a bad URL", { url: "nope" }, /subscription 0 \("erp"\): "url" is not a URL/],
    ["a non-HTTP URL", { url: "ftp://x.example/" }, /must be http:\/\/ or https:\/\//],
    ["credentials in the URL", { url: "https://u:p@x.example/" }, /must not hold credentials/],
    ["a metadata address", { url: "http://169.254.169.254/latest/meta-data" }, /points at a link-local address/],
    ["the GCE metadata name", { url: "http://metadata.google.internal/" }, /a cloud metadata service/],
    ["IPv6 link-local", { url: "http://[fe80::1]/" }, /link-local/],
    ["loopback without the allow setting", { url: "http://127.0.0.1:9000/" }, /a loopback address/],
    ["localhost", { url: "http://localhost/" }, /a loopback address/],
    ["IPv6 loopback", { url: "http://[::1]/" }, /a loopback address/],
    ["the unspecified address", { url: "http://0.0.0.0/" }, /unspecified/],
    [
      "a short secret",
      { secrets: [`whsec_${randomBytes(16).toString("base64")}`] },
      /secrets\[0\] must hold 24 to 64 bytes \(it holds 16\)/,
    ],
    ["a secret without whsec_", { secrets: [randomBytes(32).toString("base64")] }, /secrets\[0\] must be "whsec_"/],
    ["no secrets", { secrets: [] }, /"secrets" must be a list of 1 to 8/],
    ["an unknown event type", { events: ["operation.exploded"] }, /events\[0\] "operation.exploded" is unknown/],
    ["no events", { events: [] }, /"events" must be a non-empty list/],
    ["a namespace pattern outside the prefix", { namespaces: ["kube-system"] }, /namespaces\[0\]/],
    ["an unknown field", { extra: 1 }, /unknown field "extra"/],
  ])("names the entry and the field for %s, never a secret", (_what, over, msg) => {
    let message = "";
    try {
      parse([entry(over)]);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(msg);
    expect(message).not.toContain(SECRET.slice(6, 20));
  });

  it("refuses duplicate ids and allows loopback only when told", () => {
    expect(() => parse([entry(), entry()])).toThrow(/subscription 1 \("erp"\): the id is used twice/);
    expect(parse([entry({ url: "http://127.0.0.1:9000/h" })], { ...opts, allowLoopback: true })[0]!.url).toBe(
      "http://127.0.0.1:9000/h",
    );
    // Link-local stays refused even then.
    expect(() => parse([entry({ url: "http://169.254.1.1/" })], { ...opts, allowLoopback: true })).toThrow(
      /link-local/,
    );
  });

  it("matches namespaces exactly, by prefix and with '*'", () => {
    expect(matchesNamespace(["paas-ws-acme"], "paas-ws-acme")).toBe(true);
    expect(matchesNamespace(["paas-ws-acme"], "paas-ws-acme2")).toBe(false);
    expect(matchesNamespace(["paas-ws-team-*"], "paas-ws-team-x")).toBe(true);
    expect(matchesNamespace(["paas-ws-team-*"], "paas-ws-other")).toBe(false);
    expect(matchesNamespace(["*"], "anything")).toBe(true);
  });
});

describe("SubscriptionRegistry", () => {
  it("reloads a changed file; a broken file keeps the previous subscriptions and logs why without secrets", () => {
    const dir = mkdtempSync(join(tmpdir(), "webhooks-"));
    const file = join(dir, "webhooks.json");
    writeFileSync(file, JSON.stringify([entry()]));
    const lines: string[] = [];
    const logger = pino({ level: "info" }, { write: (l: string) => lines.push(l) });
    const reg = new SubscriptionRegistry({ file, parse: opts });
    expect(reg.all.map((s) => s.id)).toEqual(["erp"]);
    expect(reg.reload(logger)).toBe(false); // unchanged
    writeFileSync(`${file}.tmp`, JSON.stringify([entry(), entry({ id: "second" })]));
    renameSync(`${file}.tmp`, file);
    expect(reg.reload(logger)).toBe(true);
    expect(reg.get("second")?.id).toBe("second");
    writeFileSync(file, JSON.stringify([entry({ id: "third", secrets: ["whsec_c2hvcnQ="] })]));
    expect(reg.reload(logger)).toBe(false);
    expect(reg.all.map((s) => s.id)).toEqual(["erp", "second"]);
    const error = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.level === 50)!;
    expect(error.msg).toBe("WEBHOOKS_FILE is invalid; keeping the previous subscriptions");
    expect(String(error.error)).toContain('subscription 0 ("third")');
    expect(lines.join("\n")).not.toContain(SECRET);
    reg.close();
  });
});
