import type { V1Pod, V1Secret } from "@kubernetes/client-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Backoff } from "../../../../src/kube/watch/list-watch.ts";
import { watchReleaseEvents } from "../../../../src/kube/watch/release-watch.ts";
import type { ReleaseWatchEvent } from "../../../../src/kube/kube-types.ts";
import { decodeFromLabels, FakeSource, pod, secret } from "../../../support/fake-source.ts";

const quiet = { debug: () => {}, warn: () => {} };
const fast: Backoff = { initialMs: 1, maxMs: 5, maxFailures: 3 };

/** Reader pulls events with a deadline without losing an event that arrives late. */
class Reader {
  private pending: Promise<IteratorResult<ReleaseWatchEvent>> | undefined;
  readonly it: AsyncIterator<ReleaseWatchEvent>;
  constructor(gen: AsyncIterable<ReleaseWatchEvent>) {
    this.it = gen[Symbol.asyncIterator]();
  }
  /** The next result, or "timeout" (the pull stays pending for the next call). */
  async take(ms = 1000): Promise<IteratorResult<ReleaseWatchEvent> | "timeout"> {
    this.pending ??= this.it.next();
    let timer: NodeJS.Timeout | undefined;
    try {
      const r = await Promise.race([
        this.pending,
        new Promise<"timeout">((res) => (timer = setTimeout(() => res("timeout"), ms))),
      ]);
      if (r !== "timeout") this.pending = undefined;
      return r;
    } catch (err) {
      this.pending = undefined;
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }
  async next(ms = 1000): Promise<ReleaseWatchEvent> {
    const r = await this.take(ms);
    if (r === "timeout") throw new Error("no event in time");
    if (r.done) throw new Error("generator ended");
    return r.value;
  }
  /** Waits for an outstanding pull to settle (after an abort it resolves as done). */
  async settle(): Promise<void> {
    await this.pending?.catch(() => {});
  }
  async done(ms = 1000): Promise<boolean> {
    const r = await this.take(ms);
    return r !== "timeout" && r.done === true;
  }
}

function setup(opts: { pods?: V1Pod[]; secrets?: V1Secret[]; backoff?: Backoff } = {}) {
  const pods = new FakeSource<V1Pod>();
  const secrets = new FakeSource<V1Secret>();
  pods.items = opts.pods ?? [];
  secrets.items = opts.secrets ?? [];
  const ac = new AbortController();
  const gen = watchReleaseEvents(
    { pods, secrets, decode: decodeFromLabels, logger: quiet, backoff: opts.backoff ?? fast },
    "web",
    ac.signal,
  );
  const reader = new Reader(gen);
  cleanups.push(async () => {
    ac.abort();
    await reader.settle();
  });
  return { pods, secrets, ac, reader };
}

const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
const cleanups: (() => Promise<void>)[] = [];
let baselineTimers = 0;
beforeEach(() => {
  baselineTimers = timers();
});
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
  // Nothing of ours may outlive a test: no retry or idle timer is left behind.
  expect(timers()).toBeLessThanOrEqual(baselineTimers);
});

describe("watchReleaseEvents", () => {
  it("follows a release from before its install to its uninstall", async () => {
    const { pods, secrets, reader } = setup({ pods: [pod("other-1", { release: "other" })] });
    expect(await reader.next()).toEqual({ kind: "snapshot", release: undefined, pods: [] });
    const sw = await secrets.watchOpened();
    const pw = await pods.watchOpened();
    expect(sw.resourceVersion).toBe("100"); // resumes from the snapshot's list

    sw.push({ type: "ADDED", object: secret(1, "pending-install") });
    expect(await reader.next()).toMatchObject({
      kind: "release_changed",
      release: { revision: 1, status: "pending-install" },
    });

    pw.push({ type: "ADDED", object: pod("web-a") });
    expect(await reader.next()).toMatchObject({
      kind: "pod_added",
      pod: { name: "web-a", phase: "Pending", ready: false },
    });
    // Another release's pod and a no-op update are not events.
    pw.push({ type: "ADDED", object: pod("other-2", { release: "other" }) });
    pw.push({ type: "MODIFIED", object: pod("web-a") });
    pw.push({ type: "MODIFIED", object: pod("web-a", { ready: true }) });
    expect(await reader.next()).toMatchObject({
      kind: "pod_modified",
      pod: { name: "web-a", phase: "Running", ready: true },
    });

    sw.push({ type: "MODIFIED", object: secret(1, "deployed") });
    expect(await reader.next()).toMatchObject({
      kind: "release_changed",
      release: { revision: 1, status: "deployed" },
    });
    // Same revision, same status (e.g. Helm rewriting labels): nothing.
    sw.push({ type: "MODIFIED", object: secret(1, "deployed") });

    pw.push({ type: "DELETED", object: pod("web-a", { ready: true }) });
    expect(await reader.next()).toMatchObject({ kind: "pod_deleted", pod: { name: "web-a" } });

    sw.push({ type: "MODIFIED", object: secret(1, "uninstalling") });
    expect(await reader.next()).toMatchObject({ kind: "release_changed", release: { status: "uninstalling" } });
    sw.push({ type: "DELETED", object: secret(1, "uninstalling") });
    expect(await reader.next()).toEqual({ kind: "release_uninstalled" });
    expect(await reader.done()).toBe(true);
    expect(sw.signal.aborted).toBe(true);
    expect(pw.signal.aborted).toBe(true);
    expect(sw.closed && pw.closed).toBe(true);
  });

  it("includes pods of older charts labelled release=<name>", async () => {
    const { reader } = setup({ pods: [pod("legacy-1", { legacy: true }), pod("modern-1")] });
    const snap = await reader.next();
    expect(snap.kind === "snapshot" && snap.pods.map((p) => p.name)).toEqual(["legacy-1", "modern-1"]);
  });

  it("includes pods the release's workloads select, once the release says which", async () => {
    const podinfo = { "app.kubernetes.io/name": "web-podinfo" };
    const matchers = [{ selector: { matchLabels: podinfo } }];
    const { pods, secrets, reader } = setup({ pods: [pod("web-podinfo-1", { labels: podinfo })] });
    // Before the release exists nothing says this pod is its own.
    expect(await reader.next()).toEqual({ kind: "snapshot", release: undefined, pods: [] });
    (await secrets.watchOpened()).push({ type: "ADDED", object: secret(1, "deployed", "uid-1", matchers) });
    expect(await reader.next()).toMatchObject({ kind: "release_changed" });
    expect(await reader.next()).toMatchObject({ kind: "pod_added", pod: { name: "web-podinfo-1" } });
    // Relabelled away from the workload: gone from the release.
    (await pods.watchOpened()).push({ type: "MODIFIED", object: pod("web-podinfo-1", { labels: { other: "x" } }) });
    expect(await reader.next()).toMatchObject({ kind: "pod_deleted", pod: { name: "web-podinfo-1" } });
  });

  it("uses the manifest's selectors already in the snapshot", async () => {
    const podinfo = { "app.kubernetes.io/name": "web-podinfo" };
    const { reader } = setup({
      pods: [pod("web-podinfo-1", { labels: podinfo }), pod("unrelated", { labels: { app: "x" } })],
      secrets: [secret(1, "deployed", "uid-1", [{ selector: { matchLabels: podinfo } }])],
    });
    const snap = await reader.next();
    expect(snap.kind === "snapshot" && snap.pods.map((p) => p.name)).toEqual(["web-podinfo-1"]);
  });

  it("coalesces updates a slow consumer has not read yet", async () => {
    const { pods, reader, ac } = setup({ pods: [pod("web-a")] });
    await reader.next();
    const pw = await pods.watchOpened();
    for (let i = 1; i <= 500; i++) pw.push({ type: "MODIFIED", object: pod("web-a", { restarts: i }) });
    pw.push({ type: "ADDED", object: pod("web-b") });
    pw.push({ type: "DELETED", object: pod("web-b") }); // came and went unseen: not reported
    await new Promise((r) => setTimeout(r, 20));
    expect(await reader.next()).toMatchObject({ kind: "pod_modified", pod: { name: "web-a", restarts: 500 } });
    expect(await reader.take(50)).toBe("timeout");
    ac.abort();
    expect(await reader.done()).toBe(true);
  });

  it("re-lists after 410 Gone and reports exactly the differences", async () => {
    const { pods, reader } = setup({ pods: [pod("web-a", { ready: true }), pod("web-b", { ready: true })] });
    await reader.next();
    const pw = await pods.watchOpened();
    pods.items = [pod("web-a", { ready: true }), pod("web-c")];
    pods.resourceVersion = "200";
    pw.push({
      type: "ERROR",
      object: { kind: "Status", code: 410, reason: "Expired", message: "too old resource version" },
    });
    const events = [await reader.next(), await reader.next()];
    expect(events).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: "pod_deleted", pod: expect.objectContaining({ name: "web-b" }) }),
        expect.objectContaining({ kind: "pod_added", pod: expect.objectContaining({ name: "web-c" }) }),
      ]),
    );
    expect(pods.listCalls).toBe(2);
    expect((await pods.watchOpened(2)).resourceVersion).toBe("200");
    expect(await reader.take(50)).toBe("timeout");
  });

  it("resumes from the last resourceVersion after a broken connection, without re-listing", async () => {
    const { pods, reader } = setup();
    await reader.next();
    const pw = await pods.watchOpened();
    const p = pod("web-a");
    pw.push({ type: "ADDED", object: p });
    await reader.next();
    pw.push({ type: "BOOKMARK", object: { metadata: { resourceVersion: "555" } } });
    pw.fail(Object.assign(new TypeError("fetch failed"), { cause: { code: "ECONNRESET" } }));
    const again = await pods.watchOpened(2);
    expect(again.resourceVersion).toBe("555");
    expect(pods.listCalls).toBe(1);
    again.push({ type: "MODIFIED", object: pod("web-a", { ready: true }) });
    expect(await reader.next()).toMatchObject({ kind: "pod_modified" });
  });

  it("resumes after the server ends a watch (its timeout)", async () => {
    const { secrets, reader } = setup();
    await reader.next();
    const sw = await secrets.watchOpened();
    const s1 = secret(1, "deployed");
    sw.push({ type: "ADDED", object: s1 });
    await reader.next();
    sw.end();
    const again = await secrets.watchOpened(2);
    expect(again.resourceVersion).toBe(s1.metadata!.resourceVersion);
    expect(secrets.listCalls).toBe(1);
  });

  it("gives up after repeated failures and says so", async () => {
    const { pods, reader } = setup();
    await reader.next();
    for (let i = 1; i <= 3; i++)
      (await pods.watchOpened(i)).fail(Object.assign(new Error("refused"), { code: "ECONNREFUSED" }));
    await expect(reader.take()).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });

  it("stops promptly when the signal aborts, closing every watch", async () => {
    const { pods, secrets, reader, ac } = setup();
    await reader.next();
    const [pw, sw] = [await pods.watchOpened(), await secrets.watchOpened()];
    const pending = reader.take(1000);
    ac.abort();
    const r = await pending;
    expect(r !== "timeout" && r.done).toBe(true);
    expect(pw.closed && sw.closed).toBe(true);
  });

  it("closes its watches when the consumer just stops iterating", async () => {
    const { pods, secrets, reader } = setup();
    await reader.next();
    const [pw, sw] = [await pods.watchOpened(), await secrets.watchOpened()];
    await reader.it.return!(undefined);
    expect(pw.signal.aborted && sw.signal.aborted).toBe(true);
    expect(pw.closed && sw.closed).toBe(true);
  });

  it("returns at once when opened with an aborted signal", async () => {
    const ac = new AbortController();
    ac.abort();
    const src = new FakeSource<never>();
    const gen = watchReleaseEvents(
      { pods: src, secrets: src, decode: decodeFromLabels, logger: quiet },
      "web",
      ac.signal,
    );
    expect((await gen.next()).done).toBe(true);
    expect(src.listCalls).toBe(0);
  });

  it("fails when the first list fails", async () => {
    const { secrets, reader } = setup();
    secrets.listError = Object.assign(new Error("forbidden"), { code: 403 });
    await expect(reader.take()).rejects.toThrow("forbidden");
  });

  it("reports upgrades and rollbacks as new revisions", async () => {
    const { secrets, reader } = setup({ secrets: [secret(1, "deployed")] });
    expect(await reader.next()).toMatchObject({ kind: "snapshot", release: { revision: 1, status: "deployed" } });
    const sw = await secrets.watchOpened();
    sw.push({ type: "ADDED", object: secret(2, "pending-upgrade") });
    sw.push({ type: "MODIFIED", object: secret(1, "superseded") });
    expect(await reader.next()).toMatchObject({
      kind: "release_changed",
      release: { revision: 2, status: "pending-upgrade" },
    });
    sw.push({ type: "MODIFIED", object: secret(2, "deployed") });
    expect(await reader.next()).toMatchObject({
      kind: "release_changed",
      release: { revision: 2, status: "deployed" },
    });
  });

  it("does not report older revisions while Helm purges them newest first", async () => {
    const { secrets, reader } = setup({ secrets: [secret(1, "superseded"), secret(2, "deployed")] });
    await reader.next();
    const sw = await secrets.watchOpened();
    sw.push({ type: "MODIFIED", object: secret(2, "uninstalling") });
    expect(await reader.next()).toMatchObject({ kind: "release_changed", release: { status: "uninstalling" } });
    sw.push({ type: "DELETED", object: secret(2, "uninstalling") });
    expect(await reader.take(50)).toBe("timeout"); // v1 "superseded" is the purge in progress, not news
    sw.push({ type: "DELETED", object: secret(1, "superseded") });
    expect(await reader.next()).toEqual({ kind: "release_uninstalled" });
    expect(await reader.done()).toBe(true);
  });

  it("ends on uninstall --keep-history (newest revision uninstalled)", async () => {
    const { secrets, reader } = setup({ secrets: [secret(1, "deployed")] });
    await reader.next();
    (await secrets.watchOpened()).push({ type: "MODIFIED", object: secret(1, "uninstalled") });
    expect(await reader.next()).toEqual({ kind: "release_uninstalled" });
    expect(await reader.done()).toBe(true);
  });

  it("keeps watching a release that was already uninstalled with history when opened", async () => {
    const { secrets, reader } = setup({ secrets: [secret(1, "uninstalled")] });
    expect(await reader.next()).toMatchObject({ kind: "snapshot", release: { status: "uninstalled" } });
    (await secrets.watchOpened()).push({ type: "ADDED", object: secret(2, "pending-install") });
    expect(await reader.next()).toMatchObject({ kind: "release_changed", release: { revision: 2 } });
  });

  it("reports an uninstall that a re-list discovers (release replaced while the watch was down)", async () => {
    const { secrets, reader } = setup({ secrets: [secret(1, "superseded"), secret(2, "deployed")] });
    await reader.next();
    const sw = await secrets.watchOpened();
    secrets.items = [secret(1, "deployed", "new-uid")];
    sw.push({ type: "ERROR", object: { code: 410 } });
    expect(await reader.next()).toEqual({ kind: "release_uninstalled" });
  });
});
