import { describe, expect, it } from "vitest";
import { HttpStatusError } from "../../../../src/kube/api/api-errors.ts";
import { backoffDelay, DEFAULT_BACKOFF, runListWatch, sleep } from "../../../../src/kube/watch/list-watch.ts";
import { FakeSource } from "../../../support/fake-source.ts";

describe("backoffDelay", () => {
  it("doubles from the initial delay up to the cap, with ±20% jitter", () => {
    const mid = () => 0.5;
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, DEFAULT_BACKOFF, mid))).toEqual([500, 1000, 2000, 4000]);
    expect(backoffDelay(20, DEFAULT_BACKOFF, mid)).toBe(30_000);
    expect(backoffDelay(1, DEFAULT_BACKOFF, () => 0)).toBe(400);
    expect(backoffDelay(1, DEFAULT_BACKOFF, () => 0.999)).toBe(600);
  });
});

describe("sleep", () => {
  it("ends early on abort and leaves no timer", async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    const ac = new AbortController();
    const t0 = Date.now();
    const p = sleep(60_000, ac.signal);
    ac.abort();
    await p;
    expect(Date.now() - t0).toBeLessThan(100);
    expect(process.getActiveResourcesInfo().filter((r) => r === "Timeout").length).toBe(before);
  });
});

describe("runListWatch", () => {
  it("lists first when it has no resourceVersion, then watches from the list's", async () => {
    const src = new FakeSource<{ metadata: { name: string; resourceVersion: string } }>();
    src.items = [{ metadata: { name: "a", resourceVersion: "5" } }];
    src.resourceVersion = "42";
    const synced: unknown[] = [];
    const ac = new AbortController();
    const run = runListWatch(src, { onSync: (i) => synced.push(i), onEvent: () => {} }, ac.signal);
    const w = await src.watchOpened();
    expect(w.resourceVersion).toBe("42");
    expect(synced).toHaveLength(1);
    ac.abort();
    await run;
  });

  it("does not spin on a server that closes every watch at once", async () => {
    const src = new FakeSource<unknown>();
    const ac = new AbortController();
    const run = runListWatch(src, { onSync: () => {}, onEvent: () => {} }, ac.signal, {
      startResourceVersion: "1",
      backoff: { initialMs: 20, maxMs: 20, maxFailures: 3 },
    });
    const t0 = Date.now();
    for (let i = 1; i <= 3; i++) (await src.watchOpened(i)).end();
    await expect(run).rejects.toThrow("watch closed immediately");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(30);
  });

  it("re-lists on an HTTP 410 answer to the watch request", async () => {
    const src = new FakeSource<unknown>();
    const ac = new AbortController();
    const run = runListWatch(src, { onSync: () => {}, onEvent: () => {} }, ac.signal, { startResourceVersion: "1" });
    const t0 = Date.now();
    (await src.watchOpened(1)).fail(new HttpStatusError(410, '{"kind":"Status","code":410,"reason":"Gone"}'));
    await src.watchOpened(2);
    expect(src.listCalls).toBe(1);
    expect(Date.now() - t0).toBeLessThan(300); // at once, no backoff
    ac.abort();
    await run;
  });
});
