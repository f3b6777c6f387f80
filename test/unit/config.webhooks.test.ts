import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.ts";

// WEBHOOKS_FILE and the sender's settings.
describe("webhook configuration", () => {
  const base = { API_KEY: "k".repeat(32) };
  const dir = mkdtempSync(join(tmpdir(), "config-webhooks-"));
  const secret = `whsec_${randomBytes(32).toString("base64")}`;
  const write = (content: unknown) => {
    const f = join(dir, `${randomBytes(4).toString("hex")}.json`);
    writeFileSync(f, typeof content === "string" ? content : JSON.stringify(content));
    return f;
  };
  const sub = (over: Record<string, unknown> = {}) => ({
    id: "erp",
    url: "http://127.0.0.1:9000/hook",
    secrets: [secret],
    events: ["operation.succeeded"],
    namespaces: ["*"],
    ...over,
  });
  const errorOf = (env: Record<string, string>) => {
    try {
      loadConfig({ ...base, ...env });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error("no error");
  };

  it("defaults: no subscriptions, the spec's schedule, 1 s poll, 15 s timeout, loopback refused", () => {
    const c = loadConfig(base);
    expect(c.webhookSubscriptions).toEqual([]);
    expect(c.webhooksFile).toBeUndefined();
    expect(c.webhookScheduleMs).toHaveLength(10);
    expect(c.webhookPollMs).toBe(1000);
    expect(c.webhookTimeoutMs).toBe(15_000);
    expect(c.webhooksAllowLoopback).toBe(false);
  });

  it("reads WEBHOOKS_FILE; a loopback URL needs WEBHOOKS_ALLOW_LOOPBACK", () => {
    const f = write({ subscriptions: [sub()] });
    expect(errorOf({ WEBHOOKS_FILE: f })).toMatch(
      /^WEBHOOKS_FILE .*: subscription 0 \("erp"\): "url" points at a loopback address/,
    );
    const c = loadConfig({ ...base, WEBHOOKS_FILE: f, WEBHOOKS_ALLOW_LOOPBACK: "true" });
    expect(c.webhookSubscriptions.map((s) => s.id)).toEqual(["erp"]);
    expect(c.webhooksFile).toBe(f);
  });

  it("names the entry for a bad URL, a short secret, an unknown event or a metadata address, and never a secret", () => {
    const env = (s: unknown) => ({ WEBHOOKS_FILE: write([s]), WEBHOOKS_ALLOW_LOOPBACK: "true" });
    expect(errorOf(env(sub({ url: "::" })))).toMatch(/subscription 0 \("erp"\): "url" is not a URL/);
    expect(errorOf(env(sub({ secrets: ["whsec_c2hvcnQ="] })))).toMatch(/secrets\[0\] must hold 24 to 64 bytes/);
    expect(errorOf(env(sub({ events: ["release.deleted"] })))).toMatch(/events\[0\] "release.deleted" is unknown/);
    const meta = errorOf(env(sub({ url: "http://169.254.169.254/" })));
    expect(meta).toMatch(/link-local address, which is refused/);
    expect(meta).not.toContain(secret.slice(6));
    expect(errorOf({ WEBHOOKS_FILE: join(dir, "missing.json") })).toMatch(/cannot be read/);
    expect(errorOf({ WEBHOOKS_FILE: write("{") })).toMatch(/is not valid JSON/);
  });

  it("parses the schedule, poll interval and timeout, and refuses bad ones", () => {
    const c = loadConfig({
      ...base,
      WEBHOOK_RETRY_SCHEDULE: "0,1s,2m",
      WEBHOOK_POLL_INTERVAL: "200ms",
      WEBHOOK_TIMEOUT: "2s",
    });
    expect(c.webhookScheduleMs).toEqual([0, 1000, 120_000]);
    expect(c.webhookPollMs).toBe(200);
    expect(c.webhookTimeoutMs).toBe(2000);
    expect(errorOf({ WEBHOOK_RETRY_SCHEDULE: "0,later" })).toMatch(/^WEBHOOK_RETRY_SCHEDULE "later" is not a duration/);
    expect(errorOf({ WEBHOOK_POLL_INTERVAL: "1ms" })).toMatch(/WEBHOOK_POLL_INTERVAL must be a duration/);
    expect(errorOf({ WEBHOOKS_ALLOW_LOOPBACK: "maybe" })).toMatch(/WEBHOOKS_ALLOW_LOOPBACK must be true or false/);
  });
});
