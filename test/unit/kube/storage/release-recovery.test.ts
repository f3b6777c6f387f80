import type { ServerResponse } from "node:http";
import type { V1Secret } from "@kubernetes/client-node";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { decodeReleaseData, releaseInfoFromJson } from "../../../../src/kube/storage/helm-storage.ts";
import { createReleaseRecovery, markedFailed, newestByRelease } from "../../../../src/kube/storage/release-recovery.ts";
import { FakeApiServer, json, type Recorded, status } from "../../../support/fake-apiserver.ts";
import { helmData, helmJson, helmText } from "../../../support/helm-release-data.ts";

const logger = pino({ level: "silent" });

function storageSecret(version: number, st: string, text = helmJson(version, st), name = "web"): V1Secret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    type: "helm.sh/release.v1",
    metadata: {
      name: `sh.helm.release.v1.${name}.v${version}`,
      namespace: "paas-ws-acme",
      uid: `uid-${version}`,
      resourceVersion: String(500 + version),
      labels: { name, owner: "helm", status: st, version: String(version), createdAt: "1768210200", team: "blue" },
    },
    data: { release: helmData(text), extra: "eA==" },
  };
}

describe("markedFailed", () => {
  const now = new Date("2026-01-12T10:00:00Z");

  it("marks a pending revision failed in the record and the labels, changing nothing else", async () => {
    const secret = storageSecret(2, "pending-upgrade");
    const out = await markedFailed(secret, "operation abandoned: the operator running it stopped", now);
    expect(out).toBeDefined();
    expect(out!.status).toBe("pending-upgrade");
    expect(out!.since).toEqual(new Date("2026-01-12T09:30:00.5Z"));
    const s = out!.secret;
    expect(s.metadata).toEqual({
      ...secret.metadata,
      labels: { ...secret.metadata!.labels, status: "failed", modifiedAt: String(now.getTime() / 1000) },
    });
    expect(s.type).toBe(secret.type);
    expect(s.data!["extra"]).toBe("eA==");
    const before = JSON.parse(helmText(secret.data!["release"]!)) as Record<string, any>;
    const after = JSON.parse(helmText(s.data!["release"]!)) as Record<string, any>;
    expect(after.info).toEqual({
      ...before.info,
      status: "failed",
      description: "operation abandoned: the operator running it stopped",
    });
    expect({ ...after, info: undefined }).toEqual({ ...before, info: undefined });
    expect(helmText(s.data!["release"]!)).toContain('"replicas":12345678901234567890');
    // The input is left alone.
    expect(secret.metadata!.labels!["status"]).toBe("pending-upgrade");
  });

  it("leaves deployed, failed and superseded revisions alone", async () => {
    for (const st of ["deployed", "failed", "superseded", "uninstalling"])
      expect(await markedFailed(storageSecret(1, st), "x", now)).toBeUndefined();
  });

  it("takes pending-install's start from first_deployed when last_deployed is unset", async () => {
    const text = `{"name":"web","version":1,"info":{"first_deployed":"2026-01-10T08:00:00Z","status":"pending-install"}}`;
    const out = await markedFailed(storageSecret(1, "pending-install", text), "x", now);
    expect(out).toMatchObject({ status: "pending-install", since: new Date("2026-01-10T08:00:00Z") });
  });
});

describe("newestByRelease", () => {
  it("picks the highest revision per release, ignoring records not owned by helm", () => {
    const meta = (name: string, version: number, owner = "helm") => ({
      metadata: { name: `sh.helm.release.v1.${name}.v${version}`, labels: { name, owner, version: String(version) } },
    });
    const newest = newestByRelease([
      meta("web", 9),
      meta("web", 10),
      meta("web", 2),
      meta("api", 1),
      meta("db", 7, "someone"),
    ]);
    expect([...newest.keys()].sort()).toEqual(["api", "web"]);
    expect(newest.get("web")!.metadata!.name).toBe("sh.helm.release.v1.web.v10");
  });
});

// ---------------------------------------------------------------- over the wire (fake API)

describe("createReleaseRecovery against a fake API server", () => {
  let fake: FakeApiServer;
  const secrets = new Map<string, V1Secret>(); // "<ns>/<name>"
  let conflictOnce = false;
  const SECRETS = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/;

  function handle(req: Recorded, res: ServerResponse): void {
    if (req.path === "/api/v1/namespaces") {
      const labels = { "app.kubernetes.io/managed-by": "paas-operator" };
      return json(res, 200, {
        items: [
          { metadata: { name: "paas-ws-acme", labels } },
          { metadata: { name: "paas-ws-gone", labels, deletionTimestamp: "2026-01-01T00:00:00Z" } },
          { metadata: { name: "paas-ws-noaccess", labels } },
          { metadata: { name: "other-ns", labels } },
        ],
      });
    }
    const m = SECRETS.exec(req.path);
    if (!m) return status(res, 404, "NotFound", "no route");
    const [, ns, name] = m;
    if (ns === "paas-ws-noaccess") return status(res, 403, "Forbidden", "forbidden");
    if (req.method === "GET" && !name) {
      const sel = req.query.get("labelSelector")!;
      const want = Object.fromEntries(sel.split(",").map((kv) => kv.split("=") as [string, string]));
      const items = [...secrets.values()]
        .filter(
          (s) => s.metadata!.namespace === ns && Object.entries(want).every(([k, v]) => s.metadata!.labels![k] === v),
        )
        .map((s) => ({ apiVersion: "meta.k8s.io/v1", kind: "PartialObjectMetadata", metadata: s.metadata }));
      return json(res, 200, { kind: "PartialObjectMetadataList", items });
    }
    const key = `${ns}/${name}`;
    const cur = secrets.get(key);
    if (!cur) return status(res, 404, "NotFound", "not found");
    if (req.method === "GET") return json(res, 200, cur);
    if (req.method === "PUT") {
      const body = JSON.parse(req.body) as V1Secret;
      if (conflictOnce) {
        conflictOnce = false;
        // Someone (helm finishing after all) wrote the record meanwhile: now deployed.
        secrets.set(key, {
          ...storageSecret(2, "deployed"),
          metadata: { ...storageSecret(2, "deployed").metadata, resourceVersion: "900" },
        });
        return status(res, 409, "Conflict", "the object has been modified");
      }
      if (body.metadata!.resourceVersion !== cur.metadata!.resourceVersion)
        return status(res, 409, "Conflict", "modified");
      const stored = {
        ...body,
        metadata: { ...body.metadata, resourceVersion: String(Number(cur.metadata!.resourceVersion) + 1) },
      };
      secrets.set(key, stored);
      return json(res, 200, stored);
    }
    status(res, 405, "MethodNotAllowed", req.method);
  }

  beforeEach(async () => {
    fake = await FakeApiServer.start();
    fake.handler = handle;
    secrets.clear();
    conflictOnce = false;
    for (const s of [
      storageSecret(1, "superseded"),
      storageSecret(2, "pending-upgrade"),
      storageSecret(1, "deployed", helmJson(1, "deployed"), "api"),
    ]) {
      secrets.set(`paas-ws-acme/${s.metadata!.name}`, s);
    }
  });
  afterEach(async () => {
    await fake.close();
  });

  const recovery = () => createReleaseRecovery({ kubeConfig: fake.kubeConfig(), logger, requestTimeoutMs: 1000 });

  it("repairs as the namespace's deployer, reading metadata only and updating with the resourceVersion", async () => {
    const out = await recovery().markPendingFailed("paas-ws-acme", "web", "abandoned");
    expect(out).toEqual({
      namespace: "paas-ws-acme",
      release: "web",
      revision: 2,
      status: "pending-upgrade",
      since: new Date("2026-01-12T09:30:00.5Z"),
    });
    const list = fake.requests.find((r) => r.method === "GET" && r.path.endsWith("/secrets"))!;
    expect(list.headers.accept).toContain("as=PartialObjectMetadataList");
    expect(list.query.get("labelSelector")).toBe("owner=helm,name=web");
    expect(list.query.get("fieldSelector")).toBe("type=helm.sh/release.v1");
    const put = fake.requests.find((r) => r.method === "PUT")!;
    expect(put.path).toBe("/api/v1/namespaces/paas-ws-acme/secrets/sh.helm.release.v1.web.v2");
    expect(JSON.parse(put.body).metadata.resourceVersion).toBe("502");
    for (const r of fake.requests)
      expect(r.headers["impersonate-user"]).toBe("system:serviceaccount:paas-ws-acme:paas-deployer");
    const stored = secrets.get("paas-ws-acme/sh.helm.release.v1.web.v2")!;
    expect(stored.metadata!.labels!["status"]).toBe("failed");
    expect(releaseInfoFromJson(await decodeReleaseData(stored.data!["release"]!))).toMatchObject({
      status: "failed",
      description: "abandoned",
      revision: 2,
    });
  });

  it("returns undefined and writes nothing for a deployed or absent release", async () => {
    expect(await recovery().markPendingFailed("paas-ws-acme", "api", "x")).toBeUndefined();
    expect(await recovery().markPendingFailed("paas-ws-acme", "nothing", "x")).toBeUndefined();
    expect(fake.requests.filter((r) => r.method === "PUT")).toEqual([]);
    // The check before every operation costs one metadata list: a record labelled deployed is not read.
    expect(fake.requests.filter((r) => r.method === "GET" && r.path.includes("sh.helm.release.v1.api"))).toEqual([]);
  });

  it("looks again after a conflict and leaves a record that is no longer pending", async () => {
    conflictOnce = true;
    expect(await recovery().markPendingFailed("paas-ws-acme", "web", "x")).toBeUndefined();
    expect(fake.requests.filter((r) => r.method === "PUT")).toHaveLength(1);
    expect(secrets.get("paas-ws-acme/sh.helm.release.v1.web.v2")!.metadata!.labels!["status"]).toBe("deployed");
  });

  it("reads a release's newest revision and status from the storage metadata alone", async () => {
    expect(await recovery().newestRevision("paas-ws-acme", "web")).toEqual({ revision: 2, status: "pending-upgrade" });
    expect(await recovery().newestRevision("paas-ws-acme", "nothing")).toBeUndefined();
    // Metadata lists only: no record is read.
    expect(fake.requests.filter((r) => r.path.includes("/secrets/"))).toEqual([]);
  });

  it("refuses names that are not DNS labels", async () => {
    await expect(recovery().markPendingFailed("paas-ws-acme", "Web/../x", "x")).rejects.toMatchObject({
      kind: "invalid_argument",
    });
  });

  it("lists pending releases of managed namespaces under the prefix, as the operator, skipping unreadable ones", async () => {
    const found = await recovery().listPending("paas-ws-");
    expect(found).toEqual([
      {
        namespace: "paas-ws-acme",
        release: "web",
        revision: 2,
        status: "pending-upgrade",
        since: new Date("2026-01-12T09:30:00.5Z"),
      },
    ]);
    const nsList = fake.requests.find((r) => r.path === "/api/v1/namespaces")!;
    expect(nsList.query.get("labelSelector")).toBe("app.kubernetes.io/managed-by=paas-operator");
    const touched = new Set(fake.requests.map((r) => r.path.split("/")[4]).filter(Boolean));
    expect([...touched].sort()).toEqual(["paas-ws-acme", "paas-ws-noaccess"]);
    for (const r of fake.requests) expect(r.headers["impersonate-user"]).toBeUndefined();
    expect(await recovery().listPending("paas-ws-zzz-")).toEqual([]);
  });
});
