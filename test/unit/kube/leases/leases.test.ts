import { createHash } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { V1Lease } from "@kubernetes/client-node";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PaasError } from "../../../../src/errors.ts";
import {
  type HeldLease,
  isLive,
  LeaseManager,
  type LeaseManagerOptions,
  leaseRecord,
  lostMarginMs,
} from "../../../../src/kube/leases/leases.ts";
import { FakeApiServer, json, type Recorded, status } from "../../../support/fake-apiserver.ts";

// LeaseManager against a plain-HTTP fake coordination.k8s.io API that keeps Leases in
// memory with the API server's concurrency rules (resourceVersion on update, preconditions
// on delete, AlreadyExists on create) and can be switched to failing.

const logger = pino({ level: "silent" });
const NS = "paas-system";
const MICRO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
const LEASES = `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`;

type Mode = "ok" | "503" | "hang";

/** FakeLeases is the fake server's state: the Leases, and what it does with requests. */
class FakeLeases {
  leases = new Map<string, V1Lease>();
  namespaces = new Set<string>();
  mode: Mode = "ok";
  /** Runs before an update is applied (to stage races). */
  beforePut: ((name: string) => void) | undefined;
  private rv = 100;

  /** Open watches of the collection (GET …/leases?watch=1). */
  private watchers = new Set<ServerResponse>();

  /** put stores a Lease as another client would (new resourceVersion). */
  put(lease: V1Lease): V1Lease {
    const name = lease.metadata!.name!;
    const prev = this.leases.get(name);
    const stored = {
      ...lease,
      metadata: {
        ...lease.metadata,
        uid: prev?.metadata?.uid ?? `uid-${name}-${this.rv}`,
        resourceVersion: String(++this.rv),
      },
    };
    this.leases.set(name, stored);
    this.notify(prev ? "MODIFIED" : "ADDED", stored);
    return stored;
  }

  private notify(type: string, object: V1Lease): void {
    for (const w of this.watchers) w.write(JSON.stringify({ type, object }) + "\n");
  }

  private collection(req: Recorded, res: ServerResponse): void {
    if (req.query.get("watch") === "1") {
      res.writeHead(200, { "content-type": "application/json" });
      res.flushHeaders();
      this.watchers.add(res);
      res.on("close", () => this.watchers.delete(res));
      return;
    }
    json(res, 200, {
      kind: "LeaseList",
      metadata: { resourceVersion: String(this.rv) },
      items: [...this.leases.values()],
    });
  }

  handle = (req: Recorded, res: ServerResponse): void => {
    if (this.mode === "hang") return;
    if (this.mode === "503") return status(res, 503, "ServiceUnavailable", "etcd is down");
    if (req.path.startsWith("/api/v1/namespaces")) return this.namespace(req, res);
    if (!req.path.startsWith(LEASES)) return status(res, 404, "NotFound", "no such path");
    if (req.path === LEASES && req.method === "GET") return this.collection(req, res);
    const name = req.path.slice(LEASES.length + 1);
    const body = req.body ? (JSON.parse(req.body) as Record<string, any>) : {};
    const current = this.leases.get(name);
    switch (req.method) {
      case "GET":
        return current ? json(res, 200, current) : status(res, 404, "NotFound", `leases "${name}" not found`);
      case "POST": {
        const lease = body as V1Lease;
        if (!MICRO.test(String(lease.spec?.renewTime)))
          return status(res, 400, "BadRequest", `renewTime ${lease.spec?.renewTime} is not a MicroTime`);
        if (this.leases.has(lease.metadata!.name!)) return status(res, 409, "AlreadyExists", "already exists");
        return json(res, 201, this.put(lease));
      }
      case "PUT": {
        this.beforePut?.(name);
        this.beforePut = undefined;
        if (!this.leases.has(name)) return status(res, 404, "NotFound", "not found");
        if (!MICRO.test(String(body.spec?.renewTime)))
          return status(res, 400, "BadRequest", "renewTime is not a MicroTime");
        if (body.metadata?.resourceVersion !== this.leases.get(name)!.metadata!.resourceVersion)
          return status(res, 409, "Conflict", "the object has been modified");
        return json(res, 200, this.put(body as V1Lease));
      }
      case "DELETE": {
        if (!current) return status(res, 404, "NotFound", "not found");
        const pre = (body.preconditions ?? {}) as { uid?: string; resourceVersion?: string };
        if (
          (pre.uid && pre.uid !== current.metadata!.uid) ||
          (pre.resourceVersion && pre.resourceVersion !== current.metadata!.resourceVersion)
        ) {
          return status(res, 409, "Conflict", "Precondition failed");
        }
        this.leases.delete(name);
        this.notify("DELETED", current);
        return json(res, 200, { kind: "Status", status: "Success" });
      }
    }
    status(res, 405, "MethodNotAllowed", req.method);
  };

  private namespace(req: Recorded, res: ServerResponse): void {
    if (req.method === "GET") {
      const name = req.path.split("/")[4]!;
      return this.namespaces.has(name)
        ? json(res, 200, { metadata: { name } })
        : status(res, 404, "NotFound", "not found");
    }
    const name = (JSON.parse(req.body) as { metadata: { name: string } }).metadata.name;
    this.namespaces.add(name);
    json(res, 201, { metadata: { name } });
  }
}

let fake: FakeApiServer;
let state: FakeLeases;
const managers: LeaseManager[] = [];

function manager(replica: string, opts: Partial<LeaseManagerOptions> = {}): LeaseManager {
  const m = new LeaseManager({
    kubeConfig: fake.kubeConfig(),
    namespace: NS,
    durationSeconds: 2,
    replica,
    logger,
    pollIntervalMs: 50,
    requestTimeoutMs: 500,
    ...opts,
  });
  managers.push(m);
  return m;
}

const target = { namespace: "paas-ws-acme", release: "web" };
const leaseOf = (t = target) => state.leases.get(LeaseManager.leaseName(t.namespace, t.release));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, pred: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

beforeEach(async () => {
  fake = await FakeApiServer.start();
  state = new FakeLeases();
  fake.handler = state.handle;
});
afterEach(async () => {
  state.mode = "ok";
  await Promise.all(managers.splice(0).map((m) => m.releaseAll()));
  await fake.close();
});

describe("LeaseManager.watchHolders", () => {
  it("answers holderOf from its watched copy, without a request per read", async () => {
    const watcher = manager("pod-w");
    watcher.watchHolders();
    const other = manager("pod-o");
    const held = await other.acquire({ namespace: "paas-ws-a", release: "web" }, "op1", Date.now());
    const name = LeaseManager.leaseName("paas-ws-a", "web");
    await until("the watch to be open", () =>
      fake.requests.some((r) => r.path === LEASES && r.query.get("watch") === "1"),
    );
    const reads = () => fake.requests.filter((r) => r.method === "GET" && r.path === `${LEASES}/${name}`).length;
    const before = reads();
    for (let i = 0; i < 5; i++) expect((await watcher.holderOf("paas-ws-a", "web"))?.holder).toBe("pod-o/op1");
    expect(await watcher.holderOf("paas-ws-a", "other")).toBeUndefined();
    expect(reads()).toBe(before);
    await held.release();
    const end = Date.now() + 5000;
    while ((await watcher.holderOf("paas-ws-a", "web")) !== undefined) {
      if (Date.now() > end) throw new Error("the release was not seen");
      await sleep(20);
    }
  });

  it("reads the Lease itself while its copy cannot tell (API failing)", async () => {
    const watcher = manager("pod-w");
    state.mode = "503";
    watcher.watchHolders();
    await expect(watcher.holderOf("paas-ws-a", "web")).rejects.toMatchObject({ kind: "unavailable" });
    state.mode = "ok";
    state.put({
      metadata: { name: LeaseManager.leaseName("paas-ws-a", "web"), namespace: NS },
      spec: { holderIdentity: "pod-x/op", leaseDurationSeconds: 5, renewTime: new Date() as never },
    });
    expect((await watcher.holderOf("paas-ws-a", "web"))?.holder).toBe("pod-x/op");
  });
});

describe("LeaseManager.leaseName", () => {
  it("is a stable DNS label under 63 characters, distinct per release and for the namespace itself", () => {
    const a = LeaseManager.leaseName("paas-ws-acme", "web");
    expect(a).toMatch(/^paas-op-[0-9a-f]{40}$/);
    expect(a.length).toBeLessThanOrEqual(63);
    expect(LeaseManager.leaseName("paas-ws-acme", "web")).toBe(a);
    const others = [
      LeaseManager.leaseName("paas-ws-acme", "api"),
      LeaseManager.leaseName("paas-ws-other", "web"),
      LeaseManager.leaseName("paas-ws-acme", ""),
    ];
    expect(new Set([a, ...others]).size).toBe(4);
    // sha256("paas-ws-acme/web"), first 40 hex digits.
    expect(a).toBe("paas-op-" + createHash("sha256").update("paas-ws-acme/web").digest("hex").slice(0, 40));
  });
});

describe("expiry decision", () => {
  const now = Date.parse("2026-01-01T00:00:10Z");
  const lease = (spec: V1Lease["spec"]): V1Lease => ({ metadata: { name: "x" }, spec });

  it("is live while renewTime + duration is ahead of now", () => {
    expect(
      isLive(
        leaseRecord(
          lease({ holderIdentity: "a/1", leaseDurationSeconds: 15, renewTime: "2026-01-01T00:00:00.000000Z" as never }),
        ),
        now,
      ),
    ).toBe(true);
    expect(
      isLive(
        leaseRecord(
          lease({ holderIdentity: "a/1", leaseDurationSeconds: 5, renewTime: "2026-01-01T00:00:00.000000Z" as never }),
        ),
        now,
      ),
    ).toBe(false);
    // Exactly at expiry it is expired.
    expect(
      isLive(
        leaseRecord(
          lease({ holderIdentity: "a/1", leaseDurationSeconds: 10, renewTime: "2026-01-01T00:00:00.000000Z" as never }),
        ),
        now,
      ),
    ).toBe(false);
  });

  it("falls back to acquireTime, and treats no holder, no time or no duration as free", () => {
    expect(
      isLive(
        leaseRecord(lease({ holderIdentity: "a/1", leaseDurationSeconds: 15, acquireTime: new Date(now - 1000) })),
        now,
      ),
    ).toBe(true);
    expect(
      isLive(leaseRecord(lease({ holderIdentity: "", leaseDurationSeconds: 15, renewTime: new Date(now) })), now),
    ).toBe(false);
    expect(isLive(leaseRecord(lease({ holderIdentity: "a/1", leaseDurationSeconds: 15 })), now)).toBe(false);
    expect(isLive(leaseRecord(lease({ holderIdentity: "a/1", renewTime: new Date(now) })), now)).toBe(false);
    expect(
      leaseRecord(lease({ holderIdentity: "a/1", leaseDurationSeconds: 15, renewTime: "garbage" as never })).renewedAt,
    ).toBeUndefined();
  });

  it("gives a lease up at most a second (a tenth of short durations) before it expires", () => {
    expect(lostMarginMs(15)).toBe(1000);
    expect(lostMarginMs(2)).toBe(200);
  });
});

describe("acquire and release", () => {
  it("creates the Lease with holder, duration, MicroTimes and annotations; release deletes it with preconditions", async () => {
    const m = manager("pod-a");
    const held = await m.acquire(target, "op-1", Date.now() + 1000);
    expect(held.holder).toBe("pod-a/op-1");
    expect(held.name).toBe(LeaseManager.leaseName("paas-ws-acme", "web"));
    const stored = leaseOf()!;
    expect(stored.spec).toMatchObject({ holderIdentity: "pod-a/op-1", leaseDurationSeconds: 2, leaseTransitions: 0 });
    expect(stored.metadata?.annotations).toEqual({
      "paas.io/namespace": "paas-ws-acme",
      "paas.io/release": "web",
      "paas.io/operation": "op-1",
    });
    expect(await m.holderOf("paas-ws-acme", "web")).toMatchObject({
      holder: "pod-a/op-1",
      durationSeconds: 2,
      live: true,
    });
    await held.release();
    expect(leaseOf()).toBeUndefined();
    const del = fake.requests.find((r) => r.method === "DELETE")!;
    expect(JSON.parse(del.body).preconditions).toEqual({
      uid: stored.metadata!.uid,
      resourceVersion: stored.metadata!.resourceVersion,
    });
    expect(held.lost.aborted).toBe(false);
    expect(await m.holderOf("paas-ws-acme", "web")).toBeUndefined();
    await held.release(); // twice is fine
  });

  it("makes a second replica wait and then fail with a conflict naming the holder", async () => {
    const a = manager("pod-a");
    const b = manager("pod-b");
    await a.acquire(target, "op-1", Date.now());
    const t0 = Date.now();
    const err = await b.acquire(target, "op-2", Date.now() + 300).catch((e: unknown) => e);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(err).toBeInstanceOf(PaasError);
    expect(err).toMatchObject({
      kind: "conflict",
      message: "release paas-ws-acme/web is being changed by operation pod-a/op-1; retry later",
    });
    // Other releases, and the namespace-level lease, are independent.
    const other = await b.acquire({ namespace: "paas-ws-acme", release: "api" }, "op-3", Date.now());
    const nsLevel = await b.acquire({ namespace: "paas-ws-acme", release: "" }, "op-4", Date.now());
    expect([other.holder, nsLevel.holder]).toEqual(["pod-b/op-3", "pod-b/op-4"]);
    const nsErr = await a
      .acquire({ namespace: "paas-ws-acme", release: "" }, "op-5", Date.now())
      .catch((e: unknown) => e);
    expect(nsErr).toMatchObject({
      kind: "conflict",
      message: "namespace paas-ws-acme is being changed by operation pod-b/op-4; retry later",
    });
  });

  it("hands the lease to a waiter once the holder releases it", async () => {
    const a = manager("pod-a");
    const b = manager("pod-b");
    const held = await a.acquire(target, "op-1", Date.now());
    const waiting = b.acquire(target, "op-2", Date.now() + 3000);
    await sleep(150);
    await held.release();
    const next = await waiting;
    expect(next.holder).toBe("pod-b/op-2");
    expect(leaseOf()!.spec!.holderIdentity).toBe("pod-b/op-2");
  });

  it("takes over an expired lease (holder stopped renewing) with optimistic concurrency", async () => {
    state.put({
      metadata: {
        name: LeaseManager.leaseName(target.namespace, target.release),
        namespace: NS,
        annotations: { "paas.io/operation": "old" },
      },
      spec: {
        holderIdentity: "ghost/op-0",
        leaseDurationSeconds: 5,
        renewTime: new Date(Date.now() - 6000).toISOString().replace("Z", "000Z") as never,
        leaseTransitions: 3,
      },
    });
    const before = await manager("pod-c").holderOf(target.namespace, target.release);
    expect(before).toMatchObject({ holder: "ghost/op-0", live: false });
    const held = await manager("pod-a").acquire(target, "op-1", Date.now());
    expect(held.holder).toBe("pod-a/op-1");
    expect(leaseOf()!.spec).toMatchObject({
      holderIdentity: "pod-a/op-1",
      leaseTransitions: 4,
      leaseDurationSeconds: 2,
    });
    expect(leaseOf()!.metadata!.annotations!["paas.io/operation"]).toBe("op-1");
    const put = fake.requests.find((r) => r.method === "PUT")!;
    expect(JSON.parse(put.body).metadata.resourceVersion).toBe("101");
  });

  it("creates the lease afresh when an expired one is deleted while it takes it over", async () => {
    const name = LeaseManager.leaseName(target.namespace, target.release);
    state.put({
      metadata: { name, namespace: NS },
      spec: {
        holderIdentity: "ghost/op-0",
        leaseDurationSeconds: 1,
        renewTime: "2020-01-01T00:00:00.000000Z" as never,
      },
    });
    state.beforePut = (n) => state.leases.delete(n);
    const held = await manager("pod-a").acquire(target, "op-1", Date.now());
    expect(leaseOf()!.spec).toMatchObject({ holderIdentity: "pod-a/op-1", leaseTransitions: 0 });
    expect(fake.requests.map((r) => r.method)).toEqual(["GET", "PUT", "GET", "POST"]);
    await held.release();
  });

  it("lets exactly one of two replicas win a race for a free lease", async () => {
    const results = await Promise.allSettled([
      manager("pod-a").acquire(target, "op-1", Date.now() + 200),
      manager("pod-b").acquire(target, "op-2", Date.now() + 200),
    ]);
    const won = results.filter((r) => r.status === "fulfilled");
    expect(won).toHaveLength(1);
    const lost = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect(lost.reason).toMatchObject({ kind: "conflict" });
    expect((lost.reason as Error).message).toContain((won[0] as PromiseFulfilledResult<HeldLease>).value.holder);
  });

  it("stops waiting when the caller's signal aborts", async () => {
    await manager("pod-a").acquire(target, "op-1", Date.now());
    const ac = new AbortController();
    const waiting = manager("pod-b").acquire(target, "op-2", Date.now() + 10_000, ac.signal);
    setTimeout(() => ac.abort(new PaasError("timeout", "caller gave up")), 100);
    const t0 = Date.now();
    await expect(waiting).rejects.toMatchObject({ kind: "timeout", message: "caller gave up" });
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it("never deletes a lease someone else holds now", async () => {
    const held = await manager("pod-a").acquire(target, "op-1", Date.now());
    // Another replica took it over (say, after a long pause of ours).
    state.put({
      ...leaseOf()!,
      spec: {
        ...leaseOf()!.spec,
        holderIdentity: "pod-b/op-9",
        renewTime: new Date().toISOString().replace("Z", "000Z") as never,
      },
    });
    await held.release();
    expect(leaseOf()?.spec?.holderIdentity).toBe("pod-b/op-9");
  });

  it("creates the lease namespace only when it is absent", async () => {
    const m = manager("pod-a");
    await m.ensureNamespace();
    expect(state.namespaces.has(NS)).toBe(true);
    await m.ensureNamespace();
    expect(fake.requests.filter((r) => r.method === "POST" && r.path === "/api/v1/namespaces")).toHaveLength(1);
  });
});

describe("renewal and loss", () => {
  it("renews every duration/3 and keeps the lease past its duration", async () => {
    const held = await manager("pod-a").acquire(target, "op-1", Date.now());
    const first = Date.parse(String(leaseOf()!.spec!.renewTime));
    await sleep(2600);
    const renewed = Date.parse(String(leaseOf()!.spec!.renewTime));
    expect(renewed - first).toBeGreaterThan(1500);
    expect(fake.requests.filter((r) => r.method === "PUT").length).toBeGreaterThanOrEqual(3);
    expect(held.lost.aborted).toBe(false);
    expect(isLive(leaseRecord(leaseOf()!), Date.now())).toBe(true);
  });

  it("aborts `lost` before the lease would expire when the API keeps failing; release() does not throw and cleans up later", async () => {
    const held = await manager("pod-a").acquire(target, "op-1", Date.now());
    const acquiredAt = Date.parse(String(leaseOf()!.spec!.renewTime));
    state.mode = "503";
    await until("lost", () => held.lost.aborted, 4000);
    const lostAt = Date.now();
    // Before the stored lease expires (renewTime + 2 s), by the margin at most.
    const expiresAt = Date.parse(String(leaseOf()!.spec!.renewTime)) + 2000;
    expect(lostAt).toBeLessThanOrEqual(expiresAt);
    expect(lostAt - acquiredAt).toBeGreaterThan(1000);
    expect(held.lost.reason).toBeInstanceOf(PaasError);
    expect(held.lost.reason).toMatchObject({
      kind: "unavailable",
      message: "lost the lease of release paas-ws-acme/web: Kubernetes API unreachable",
    });
    await expect(held.release()).resolves.toBeUndefined();
    expect(leaseOf()).toBeDefined();
    // The API comes back: the background retry deletes the lease.
    state.mode = "ok";
    await until("lease deleted in the background", () => leaseOf() === undefined, 3000);
  });

  it("aborts `lost` at the next renewal when another replica took the lease", async () => {
    const held = await manager("pod-a").acquire(target, "op-1", Date.now());
    state.put({ ...leaseOf()!, spec: { ...leaseOf()!.spec, holderIdentity: "pod-b/op-2" } });
    await until("lost", () => held.lost.aborted, 2000);
    expect(held.lost.reason).toMatchObject({
      kind: "unavailable",
      message: "lost the lease of release paas-ws-acme/web: taken over by pod-b/op-2",
    });
  });

  it("keeps the lease when only its metadata was changed by someone else", async () => {
    const held = await manager("pod-a").acquire(target, "op-1", Date.now());
    state.put({ ...leaseOf()!, metadata: { ...leaseOf()!.metadata, annotations: { note: "a human was here" } } });
    await sleep(1500);
    expect(held.lost.aborted).toBe(false);
    expect(leaseOf()!.metadata!.annotations).toEqual({ note: "a human was here" });
    expect(Date.now() - Date.parse(String(leaseOf()!.spec!.renewTime))).toBeLessThan(900);
  });

  it("releaseAll gives back every lease of the process", async () => {
    const m = manager("pod-a");
    const a = await m.acquire(target, "op-1", Date.now());
    await m.acquire({ namespace: "paas-ws-acme", release: "api" }, "op-2", Date.now());
    await a.release();
    expect(state.leases.size).toBe(1);
    await m.releaseAll();
    expect(state.leases.size).toBe(0);
  });
});

describe("unreachable API", () => {
  it("fails acquire with unavailable at once on 5xx, and within the request timeout when the server hangs", async () => {
    state.mode = "503";
    await expect(manager("pod-a").acquire(target, "op-1", Date.now() + 10_000)).rejects.toMatchObject({
      kind: "unavailable",
    });
    state.mode = "hang";
    const t0 = Date.now();
    const err = await manager("pod-a", { requestTimeoutMs: 300 })
      .acquire(target, "op-1", Date.now() + 10_000)
      .catch((e: unknown) => e);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(err).toMatchObject({
      kind: "unavailable",
      message: "read the lease of release paas-ws-acme/web: Kubernetes API unreachable",
    });
  });

  it("fails acquire with unavailable when nothing listens", async () => {
    const m = manager("pod-a");
    await fake.close();
    const t0 = Date.now();
    await expect(m.acquire(target, "op-1", Date.now() + 10_000)).rejects.toMatchObject({ kind: "unavailable" });
    expect(Date.now() - t0).toBeLessThan(2000);
    fake = await FakeApiServer.start(); // for afterEach
  });
});
