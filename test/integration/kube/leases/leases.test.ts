import { randomBytes } from "node:crypto";
import { createServer, type Server, type Socket, connect } from "node:net";
import type { AddressInfo } from "node:net";
import { ApiException, CoordinationV1Api, CoreV1Api, KubeConfig, V1MicroTime } from "@kubernetes/client-node";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PaasError } from "../../../../src/errors.ts";
import { type HeldLease, LeaseManager, type LeaseManagerOptions } from "../../../../src/kube/leases/leases.ts";

// LeaseManager against the real testbed API server: two managers stand for two replicas.
// Needs KUBECONFIG (and KUBE_APISERVER for the proxy) from .testbed/env; fails, never
// skips, without them.

const need = ["KUBECONFIG", "KUBE_APISERVER"] as const;
const missing = need.filter((n) => !process.env[n]);

const logger = pino({ level: process.env.LOG_LEVEL ?? "silent" });
const run = randomBytes(3).toString("hex");
const LEASE_NS = `paas-leases-it-${run}`;
const tenant = `paas-ws-lease-${run}`; // only a name: leases never touch the tenant namespace

let kc: KubeConfig;
let coord: CoordinationV1Api;
let core: CoreV1Api;
const managers: LeaseManager[] = [];
const proxies: Proxy[] = [];

function manager(replica: string, opts: Partial<LeaseManagerOptions> = {}): LeaseManager {
  const m = new LeaseManager({
    kubeConfig: kc,
    namespace: LEASE_NS,
    durationSeconds: 3,
    replica,
    logger,
    pollIntervalMs: 100,
    requestTimeoutMs: 2000,
    ...opts,
  });
  managers.push(m);
  return m;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const readLease = (release: string) =>
  coord
    .readNamespacedLease({ name: LeaseManager.leaseName(tenant, release), namespace: LEASE_NS })
    .catch((err: unknown) => {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw err;
    });

async function until(what: string, pred: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Proxy forwards TCP to the API server until close(), which also cuts every open connection. */
class Proxy {
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;
  private constructor(server: Server) {
    this.server = server;
  }

  static async start(target: URL): Promise<Proxy> {
    const server = createServer();
    const proxy = new Proxy(server);
    server.on("connection", (client) => {
      const upstream = connect(Number(target.port), target.hostname);
      for (const s of [client, upstream]) {
        proxy.sockets.add(s);
        s.on("close", () => proxy.sockets.delete(s));
        s.on("error", () => undefined);
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    proxies.push(proxy);
    return proxy;
  }

  /** kubeConfig is the testbed's, pointed at this proxy (the server certificate is for 127.0.0.1 either way). */
  kubeConfig(): KubeConfig {
    const port = (this.server.address() as AddressInfo).port;
    const current = kc.getCurrentCluster()!;
    const out = new KubeConfig();
    out.loadFromOptions({
      clusters: kc.clusters.map((c) => (c.name === current.name ? { ...c, server: `https://127.0.0.1:${port}` } : c)),
      users: kc.users,
      contexts: kc.contexts,
      currentContext: kc.currentContext,
    });
    return out;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

beforeAll(async () => {
  if (missing.length > 0)
    throw new Error(
      `testbed variables missing: ${missing.join(", ")}. Run 'npm run testbed:up' and 'set -a; source .testbed/env; set +a'.`,
    );
  kc = new KubeConfig();
  kc.loadFromDefault();
  coord = kc.makeApiClient(CoordinationV1Api);
  core = kc.makeApiClient(CoreV1Api);
});

afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.releaseAll()));
  await Promise.all(proxies.splice(0).map((p) => p.close().catch(() => undefined)));
});

afterAll(async () => {
  await core?.deleteNamespace({ name: LEASE_NS }).catch((err: unknown) => {
    if (!(err instanceof ApiException && (err.code === 404 || err.code === 409))) throw err;
  });
});

describe("LeaseManager.ensureNamespace", () => {
  it("creates the lease namespace once", async () => {
    await expect(core.readNamespace({ name: LEASE_NS })).rejects.toMatchObject({ code: 404 });
    await manager("pod-a").ensureNamespace();
    const ns = await core.readNamespace({ name: LEASE_NS });
    expect(ns.metadata?.labels?.["app.kubernetes.io/managed-by"]).toBe("paas-operator");
    await manager("pod-b").ensureNamespace(); // already there: no error
  });
});

describe("LeaseManager on the testbed", () => {
  beforeAll(async () => {
    await manager("setup").ensureNamespace();
  });

  it("lets two replicas exclude each other; the waiter gets the lease after release", async () => {
    const a = manager("pod-a");
    const b = manager("pod-b");
    const held = await a.acquire({ namespace: tenant, release: "web" }, "op-1", Date.now());
    const lease = await readLease("web");
    expect(lease?.spec).toMatchObject({ holderIdentity: "pod-a/op-1", leaseDurationSeconds: 3 });
    expect(lease?.metadata?.annotations).toMatchObject({
      "paas.io/namespace": tenant,
      "paas.io/release": "web",
      "paas.io/operation": "op-1",
    });
    // The API server keeps microseconds: our MicroTime format was accepted as such.
    expect(String(lease?.spec?.renewTime)).toMatch(/\.\d{6}Z$/);

    let got: HeldLease | undefined;
    const t0 = Date.now();
    const waiting = b
      .acquire({ namespace: tenant, release: "web" }, "op-2", Date.now() + 20_000)
      .then((h) => (got = h));
    // Meanwhile other releases are independent.
    const other = await b.acquire({ namespace: tenant, release: "api" }, "op-3", Date.now());
    expect(other.holder).toBe("pod-b/op-3");
    await sleep(1500); // longer than a renewal period: a still has it
    expect(got).toBeUndefined();
    await held.release();
    await waiting;
    expect(got!.holder).toBe("pod-b/op-2");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);
    expect((await readLease("web"))?.spec?.holderIdentity).toBe("pod-b/op-2");
    expect(await a.holderOf(tenant, "web")).toMatchObject({ holder: "pod-b/op-2", live: true, durationSeconds: 3 });
    await got!.release();
    await other.release();
    expect(await readLease("web")).toBeUndefined();
    expect(await readLease("api")).toBeUndefined();
  });

  it("fails with a conflict naming the holder at the deadline", async () => {
    await manager("pod-a").acquire({ namespace: tenant, release: "web" }, "op-1", Date.now());
    const t0 = Date.now();
    const err = await manager("pod-b")
      .acquire({ namespace: tenant, release: "web" }, "op-2", Date.now() + 1000)
      .catch((e: unknown) => e);
    const waited = Date.now() - t0;
    expect(err).toBeInstanceOf(PaasError);
    expect(err).toMatchObject({
      kind: "conflict",
      message: `release ${tenant}/web is being changed by operation pod-a/op-1; retry later`,
    });
    expect(waited).toBeGreaterThanOrEqual(950);
    expect(waited).toBeLessThan(4000);
  });

  it("takes over a lease whose holder stopped renewing once it expires", async () => {
    // A holder that crashed long ago: renewed 10 s ago for 3 s.
    const name = LeaseManager.leaseName(tenant, "stale");
    const old = new V1MicroTime(Date.now() - 10_000);
    await coord.createNamespacedLease({
      namespace: LEASE_NS,
      body: {
        metadata: { name },
        spec: {
          holderIdentity: "crashed/op-0",
          leaseDurationSeconds: 3,
          acquireTime: old,
          renewTime: old,
          leaseTransitions: 2,
        },
      },
    });
    const t0 = Date.now();
    const held = await manager("pod-b").acquire({ namespace: tenant, release: "stale" }, "op-1", Date.now());
    expect(Date.now() - t0).toBeLessThan(1000);
    expect((await readLease("stale"))?.spec).toMatchObject({ holderIdentity: "pod-b/op-1", leaseTransitions: 3 });
    await held.release();
  });

  it("fires `lost` when the API becomes unreachable; release() does not throw; another replica takes over after expiry", async () => {
    const proxy = await Proxy.start(new URL(process.env.KUBE_APISERVER!));
    const cut = manager("pod-a", { kubeConfig: proxy.kubeConfig(), requestTimeoutMs: 1000 });
    const held = await cut.acquire({ namespace: tenant, release: "db" }, "op-1", Date.now());
    await sleep(1200); // one renewal through the proxy
    expect(held.lost.aborted).toBe(false);
    const renewed = Date.parse(String((await readLease("db"))!.spec!.renewTime));
    expect(Date.now() - renewed).toBeLessThan(1200);

    // Meanwhile a second replica waits for it.
    const other = manager("pod-b");
    const waiting = other.acquire({ namespace: tenant, release: "db" }, "op-2", Date.now() + 20_000);
    const cutAt = Date.now();
    await proxy.close();
    await until("lost", () => held.lost.aborted, 5000);
    const lostAfter = Date.now() - cutAt;
    expect(held.lost.reason).toBeInstanceOf(PaasError);
    expect(held.lost.reason).toMatchObject({
      kind: "unavailable",
      message: `lost the lease of release ${tenant}/db: Kubernetes API unreachable`,
    });
    // Lost no later than the stored lease expires.
    const stored = (await readLease("db"))!;
    expect(Date.now()).toBeLessThanOrEqual(Date.parse(String(stored.spec!.renewTime)) + 3000 + 200);
    expect(lostAfter).toBeLessThan(3000);

    const t0 = Date.now();
    await expect(held.release()).resolves.toBeUndefined();
    expect(Date.now() - t0).toBeLessThan(3000);

    const next = await waiting;
    expect(next.holder).toBe("pod-b/op-2");
    expect((await readLease("db"))?.spec?.holderIdentity).toBe("pod-b/op-2");
    // A manager that cannot reach the API at all fails promptly with unavailable.
    const t1 = Date.now();
    await expect(
      cut.acquire({ namespace: tenant, release: "other" }, "op-3", Date.now() + 20_000),
    ).rejects.toMatchObject({ kind: "unavailable" });
    expect(Date.now() - t1).toBeLessThan(3000);
    await next.release();
  });

  it("answers holderOf from its watched copy: another replica's lease shows up, and goes away when released", async () => {
    const watcher = manager("pod-w");
    watcher.watchHolders();
    const other = manager("pod-o");
    const held = await other.acquire({ namespace: tenant, release: "watched" }, "op-w", Date.now());
    await until(
      "the watched copy to see the holder",
      async () => (await watcher.holderOf(tenant, "watched"))?.holder === "pod-o/op-w",
      5000,
    );
    expect((await watcher.holderOf(tenant, "watched"))?.live).toBe(true);
    await held.release();
    await until(
      "the watched copy to see the release",
      async () => (await watcher.holderOf(tenant, "watched")) === undefined,
      5000,
    );
    expect(await readLease("watched")).toBeUndefined();
  });

  it("releases only its own lease", async () => {
    const held = await manager("pod-a").acquire({ namespace: tenant, release: "mine" }, "op-1", Date.now());
    // Someone else took the lease over (as after a long pause of ours).
    const lease = (await readLease("mine"))!;
    await coord.replaceNamespacedLease({
      name: lease.metadata!.name!,
      namespace: LEASE_NS,
      body: { ...lease, spec: { ...lease.spec, holderIdentity: "pod-z/op-9", renewTime: new V1MicroTime(Date.now()) } },
    });
    await held.release();
    expect((await readLease("mine"))?.spec?.holderIdentity).toBe("pod-z/op-9");
    await coord.deleteNamespacedLease({ name: lease.metadata!.name!, namespace: LEASE_NS });
  });
});
