import type { V1Lease } from "@kubernetes/client-node";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { LeaseCache, UNKNOWN } from "../../../../src/kube/leases/lease-cache.ts";
import type { WatchSource } from "../../../../src/kube/watch/list-watch.ts";
import type { WatchEvent } from "../../../../src/kube/watch/watch-stream.ts";

const lease = (name: string, holder: string, rv: string): V1Lease => ({
  metadata: { name, resourceVersion: rv },
  spec: { holderIdentity: holder },
});

/** A collection whose list and watch the test drives: push events, break the watch, change what a list returns. */
class FakeLeases implements WatchSource<V1Lease> {
  items: V1Lease[] = [];
  lists = 0;
  listFails = false;
  private pending: Array<WatchEvent | Error> = [];
  private wake: (() => void) | undefined;

  async list() {
    this.lists++;
    if (this.listFails) throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    return { items: structuredClone(this.items), resourceVersion: String(this.lists * 100) };
  }

  async *watch(_rv: string, signal: AbortSignal): AsyncIterable<WatchEvent> {
    while (!signal.aborted) {
      const next = this.pending.shift();
      if (next instanceof Error) throw next;
      if (next) {
        yield next;
        continue;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        signal.addEventListener("abort", () => resolve(), { once: true });
      });
    }
  }

  push(e: WatchEvent | Error): void {
    this.pending.push(e);
    this.wake?.();
  }
}

const until = async (what: string, check: () => boolean) => {
  const deadline = Date.now() + 3000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

const fast = { initialMs: 10, maxMs: 20, maxFailures: 3 };

describe("LeaseCache", () => {
  it("answers UNKNOWN until listed, then follows ADDED, MODIFIED and DELETED", async () => {
    const src = new FakeLeases();
    src.items = [lease("a", "r1/op1", "5")];
    const cache = new LeaseCache(src, pino({ level: "silent" }), fast);
    expect(cache.get("a")).toBe(UNKNOWN);
    cache.start();
    await until("the first list", () => cache.get("a") !== UNKNOWN);
    expect((cache.get("a") as V1Lease).spec?.holderIdentity).toBe("r1/op1");
    expect(cache.get("b")).toBeUndefined();
    src.push({ type: "ADDED", object: lease("b", "r2/op2", "6") });
    src.push({ type: "MODIFIED", object: lease("a", "r1/op3", "7") });
    await until("the events", () => (cache.get("b") as V1Lease | undefined)?.spec?.holderIdentity === "r2/op2");
    expect((cache.get("a") as V1Lease).spec?.holderIdentity).toBe("r1/op3");
    src.push({ type: "DELETED", object: lease("a", "r1/op3", "8") });
    await until("the deletion", () => cache.get("a") === undefined);
    await cache.stop();
    expect(cache.get("b")).toBe(UNKNOWN);
  });

  it("answers UNKNOWN while its watch is broken and the API unreachable, and lists afresh once it is back", async () => {
    const src = new FakeLeases();
    src.items = [lease("a", "r1/op1", "5")];
    const cache = new LeaseCache(src, pino({ level: "silent" }), fast);
    cache.start();
    await until("the first list", () => cache.get("a") !== UNKNOWN);
    src.listFails = true;
    // What happened while the watch was down: "a" was released, "c" taken.
    src.items = [lease("c", "r3/op9", "9")];
    src.push(Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }));
    await until("the cache to stop answering", () => cache.get("a") === UNKNOWN);
    const listsWhileDown = src.lists;
    await until("retries", () => src.lists > listsWhileDown + 1);
    expect(cache.get("c")).toBe(UNKNOWN);
    src.listFails = false;
    await until("the re-list", () => cache.get("c") !== UNKNOWN);
    expect((cache.get("c") as V1Lease).spec?.holderIdentity).toBe("r3/op9");
    expect(cache.get("a")).toBeUndefined();
    await cache.stop();
  });
});
