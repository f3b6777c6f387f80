import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { API_KEY, createHarness, managedNamespace } from "../../support/harness.ts";
import { codeOf } from "../../support/failure.ts";

describe("API key interceptor", () => {
  it("refuses a call without a key, with a wrong key, and with an empty key", async () => {
    const h = await createHarness();
    managedNamespace(h.cluster, "paas-ws-a");
    expect(await codeOf(h.clients(null).releases.listReleases({ namespace: "paas-ws-a" }))).toBe(Code.Unauthenticated);
    expect(await codeOf(h.clients("wrong-key-0123456789").releases.listReleases({ namespace: "paas-ws-a" }))).toBe(
      Code.Unauthenticated,
    );
    expect(await codeOf(h.clients("").releases.listReleases({ namespace: "paas-ws-a" }))).toBe(Code.Unauthenticated);
    expect(h.helm.calls).toEqual([{ verb: "version", args: undefined }]);
  });

  it("accepts the configured key and logs the key id, never the key", async () => {
    const h = await createHarness();
    managedNamespace(h.cluster, "paas-ws-a");
    await h.releases.listReleases({ namespace: "paas-ws-a" });
    expect(h.logs.text).toMatch(/"caller":"key-[0-9a-f]{8}"/);
    expect(h.logs.text).not.toContain(API_KEY);
  });

  it("lets health checks through without a key", async () => {
    const h = await createHarness();
    const res = await h.clients(null).health.check({ service: "" });
    expect(res.status).toBe(1); // SERVING
  });

  it("never logs a wrong key either", async () => {
    const h = await createHarness();
    await codeOf(h.clients("leaked-secret-value-123").releases.listReleases({ namespace: "paas-ws-a" }));
    expect(h.logs.text).toContain("Unauthenticated");
    expect(h.logs.text).not.toContain("leaked-secret-value-123");
  });
});
