import { gzipSync } from "node:zlib";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createKubeClient } from "../../../src/kube/kube-client.ts";
import type { KubeClient, ReleaseWatchEvent } from "../../../src/kube/kube-types.ts";
import type { ServerResponse } from "node:http";
import { FakeApiServer, json, type Recorded, startWatch, status } from "../../support/fake-apiserver.ts";
import { pod } from "../../support/fake-source.ts";

// The client against a plain-HTTP fake API server: checks what goes over the wire
// (server-side apply content type, selectors, preconditions) and that connections close.
const logger = pino({ level: "silent" });
const MANAGED = { "app.kubernetes.io/managed-by": "paas-operator" };
let fake: FakeApiServer;
let kube: KubeClient;

beforeEach(async () => {
  fake = await FakeApiServer.start();
  kube = createKubeClient({
    kubeConfig: fake.kubeConfig(),
    logger,
    requestTimeoutMs: 500,
    pingTimeoutMs: 200,
    watchBackoff: { initialMs: 10, maxMs: 20, maxFailures: 3 },
  });
});
afterEach(async () => {
  await fake.close();
});

const nsObject = (name: string, labels: Record<string, string> = MANAGED) => ({
  apiVersion: "v1",
  kind: "Namespace",
  metadata: { name, uid: `uid-${name}`, labels, creationTimestamp: "2025-11-20T10:00:00Z" },
  status: { phase: "Active" },
});

function quotaAnswer(body: string) {
  const sent = JSON.parse(body) as { spec: unknown };
  return { ...sent, status: { hard: {}, used: { "requests.cpu": "0" } } };
}

/** A storage Secret encoded the way Helm does it (gzip, base64, and base64 again in the Secret's JSON). */
function helmSecret(version: number, status: string, extra: Record<string, unknown> = {}) {
  const json = JSON.stringify({
    name: "web",
    version,
    info: { status },
    chart: { metadata: { name: "podinfo" } },
    ...extra,
  });
  return {
    type: "helm.sh/release.v1",
    metadata: {
      name: `sh.helm.release.v1.web.v${version}`,
      labels: { owner: "helm", name: "web", version: String(version), status },
    },
    data: { release: Buffer.from(gzipSync(json).toString("base64")).toString("base64") },
  };
}

describe("ping", () => {
  it("resolves when /version answers, with our credentials", async () => {
    fake.handler = (_req, res) => json(res, 200, { major: "1", minor: "36", gitVersion: "v1.36.3" });
    await kube.ping();
    expect(fake.requests[0]).toMatchObject({ method: "GET", path: "/version" });
    expect(fake.requests[0]!.headers.authorization).toBe("Bearer test-token");
  });

  it("is unavailable when the server hangs or is gone", async () => {
    fake.handler = () => {}; // never answers
    const t0 = Date.now();
    await expect(kube.ping()).rejects.toMatchObject({ kind: "unavailable" });
    expect(Date.now() - t0).toBeLessThan(1500);
    await fake.close();
    await expect(kube.ping()).rejects.toMatchObject({ kind: "unavailable" });
    fake = await FakeApiServer.start(); // for afterEach
  });
});

/**
 * provisioning answers every request of ensureNamespace like a healthy API server: the
 * two ClusterRoles exist, SelfSubjectReview names the operator, apply patches echo their
 * body, access reviews allow. `over` answers first when it returns true.
 */
function provisioning(
  opts: {
    existing?: Record<string, unknown>;
    over?: (req: Recorded, res: ServerResponse) => boolean;
    allowed?: () => boolean;
  } = {},
) {
  return (req: Recorded, res: ServerResponse) => {
    if (opts.over?.(req, res)) return;
    if (req.method === "GET" && req.path.startsWith("/apis/rbac.authorization.k8s.io/v1/clusterroles/"))
      return json(res, 200, { metadata: { name: req.path.split("/").pop() } });
    if (req.method === "GET" && req.path === "/version")
      return json(res, 200, { major: "1", minor: "36", gitVersion: "v1.36.3" });
    if (req.method === "POST" && req.path === "/apis/authentication.k8s.io/v1/selfsubjectreviews") {
      return json(res, 201, { status: { userInfo: { username: "system:serviceaccount:paas-system:paas-operator" } } });
    }
    if (req.method === "POST" && req.path === "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews") {
      return json(res, 201, { ...JSON.parse(req.body), status: { allowed: opts.allowed?.() ?? true } });
    }
    if (req.method === "POST" && req.path === "/api/v1/namespaces") {
      if (opts.existing) return status(res, 409, "AlreadyExists", 'namespaces "paas-ws-a" already exists');
      return json(res, 201, JSON.parse(req.body));
    }
    if (req.method === "GET" && req.path === "/api/v1/namespaces/paas-ws-a") return json(res, 200, opts.existing);
    if (req.method === "PATCH" && req.path.endsWith("/resourcequotas/paas-quota"))
      return json(res, 200, quotaAnswer(req.body));
    if (req.method === "PATCH") return json(res, 200, JSON.parse(req.body));
    status(res, 404, "NotFound", "nope");
  };
}

const patchPaths = () => fake.requests.filter((r) => r.method === "PATCH").map((r) => r.path);

describe("namespaces", () => {
  it("creates a namespace, then applies labels, LimitRange, quota, NetworkPolicy, ServiceAccount, RoleBindings, and ready last", async () => {
    fake.handler = provisioning();
    const { created, namespace } = await kube.ensureNamespace("paas-ws-a", {
      cpu: "2",
      memory: "4Gi",
      storage: "10Gi",
    });
    expect(created).toBe(true);
    expect(namespace).toMatchObject({ name: "paas-ws-a", ready: true, podSecurity: "restricted" });
    expect(namespace.quota).toContainEqual({ resource: "limits.cpu", hard: "2", used: "" });
    expect(namespace.quota).toContainEqual({ resource: "requests.cpu", hard: "2", used: "0" });

    const create = fake.requests.find((r) => r.method === "POST" && r.path === "/api/v1/namespaces")!;
    // Created without the ready label: nothing may be installed until the end.
    expect(JSON.parse(create.body).metadata).toEqual({ name: "paas-ws-a", labels: MANAGED });
    expect(patchPaths()).toEqual([
      "/api/v1/namespaces/paas-ws-a",
      "/api/v1/namespaces/paas-ws-a/limitranges/paas-limits",
      "/api/v1/namespaces/paas-ws-a/resourcequotas/paas-quota",
      "/apis/networking.k8s.io/v1/namespaces/paas-ws-a/networkpolicies/paas-default-deny",
      "/api/v1/namespaces/paas-ws-a/serviceaccounts/paas-deployer",
      "/apis/rbac.authorization.k8s.io/v1/namespaces/paas-ws-a/rolebindings/paas-deployer",
      "/apis/rbac.authorization.k8s.io/v1/namespaces/paas-ws-a/rolebindings/paas-operator",
      "/api/v1/namespaces/paas-ws-a",
    ]);
    const patches = fake.requests.filter((r) => r.method === "PATCH");
    for (const patch of patches) {
      expect(patch.headers["content-type"]).toBe("application/apply-patch+yaml");
      expect(patch.query.get("fieldManager")).toBe("paas-operator");
      expect(patch.query.get("force")).toBe("true");
    }
    const body = (i: number) => JSON.parse(patches[i]!.body);
    expect(body(0).metadata.labels).toEqual({
      ...MANAGED,
      "pod-security.kubernetes.io/enforce": "restricted",
      "pod-security.kubernetes.io/enforce-version": "v1.36",
      "pod-security.kubernetes.io/warn": "restricted",
      "pod-security.kubernetes.io/warn-version": "latest",
      "pod-security.kubernetes.io/audit": "restricted",
      "pod-security.kubernetes.io/audit-version": "latest",
    });
    expect(body(1).spec.limits[0]).toHaveProperty("default");
    expect(body(2).spec.hard).toMatchObject({
      "limits.memory": "4Gi",
      "requests.storage": "10Gi",
      persistentvolumeclaims: "10",
      "services.nodeports": "0",
    });
    expect(body(3).spec.policyTypes).toEqual(["Ingress", "Egress"]);
    expect(body(4)).toMatchObject({ kind: "ServiceAccount", automountServiceAccountToken: false });
    expect(body(5)).toMatchObject({
      roleRef: { kind: "ClusterRole", name: "paas-tenant-deployer" },
      subjects: [{ kind: "ServiceAccount", name: "paas-deployer", namespace: "paas-ws-a" }],
    });
    expect(body(6)).toMatchObject({
      roleRef: { kind: "ClusterRole", name: "paas-operator-tenant" },
      subjects: [{ kind: "ServiceAccount", name: "paas-operator", namespace: "paas-system" }],
    });
    expect(body(7).metadata.labels).toMatchObject({
      "paas.io/ready": "true",
      "pod-security.kubernetes.io/enforce": "restricted",
    });
    // The deployer's RoleBinding is checked as the deployer (impersonation), the operator's as itself.
    const reviews = fake.requests.filter((r) => r.path.endsWith("/selfsubjectaccessreviews"));
    expect(reviews.map((r) => [r.headers["impersonate-user"], JSON.parse(r.body).spec.resourceAttributes])).toEqual([
      [
        "system:serviceaccount:paas-ws-a:paas-deployer",
        { namespace: "paas-ws-a", verb: "create", group: "apps", resource: "deployments" },
      ],
      [undefined, { namespace: "paas-ws-a", verb: "list", group: "", resource: "secrets" }],
    ]);
  });

  it("enforces the Pod Security level the caller asks for", async () => {
    fake.handler = provisioning();
    const { namespace } = await kube.ensureNamespace(
      "paas-ws-a",
      { cpu: "2", memory: "4Gi", storage: "10Gi" },
      { podSecurity: "baseline" },
    );
    expect(namespace.podSecurity).toBe("baseline");
    await expect(
      kube.ensureNamespace(
        "paas-ws-a",
        { cpu: "2", memory: "4Gi", storage: "10Gi" },
        { podSecurity: "privileged" as "baseline" },
      ),
    ).rejects.toMatchObject({
      kind: "invalid_argument",
    });
  });

  it("re-applies everything to a namespace it manages, keeping it ready while it does", async () => {
    fake.handler = provisioning({ existing: nsObject("paas-ws-a", { ...MANAGED, "paas.io/ready": "true" }) });
    const { created } = await kube.ensureNamespace("paas-ws-a", { cpu: "3", memory: "4Gi", storage: "10Gi" });
    expect(created).toBe(false);
    expect(patchPaths()).toHaveLength(8);
    const first = fake.requests.find((r) => r.method === "PATCH")!;
    expect(JSON.parse(first.body).metadata.labels["paas.io/ready"]).toBe("true");
  });

  it("leaves a namespace whose provisioning fails without the ready label; the next call repairs it", async () => {
    let failNetworkPolicy = true;
    fake.handler = provisioning({
      over: (req, res) => {
        if (failNetworkPolicy && req.method === "PATCH" && req.path.includes("/networkpolicies/")) {
          status(res, 500, "InternalError", "etcd hiccup");
          return true;
        }
        return false;
      },
    });
    await expect(kube.ensureNamespace("paas-ws-a", { cpu: "1", memory: "1Gi", storage: "1Gi" })).rejects.toMatchObject({
      kind: "internal",
      message: 'apply NetworkPolicy to namespace "paas-ws-a": Kubernetes API internal error',
    });
    // No ready label was ever sent, and the namespace was not deleted.
    expect(fake.requests.some((r) => r.method === "PATCH" && r.body.includes("paas.io/ready"))).toBe(false);
    expect(fake.requests.some((r) => r.method === "DELETE")).toBe(false);

    failNetworkPolicy = false;
    fake.requests.length = 0;
    fake.handler = provisioning({ existing: nsObject("paas-ws-a") });
    const again = await kube.ensureNamespace("paas-ws-a", { cpu: "1", memory: "1Gi", storage: "1Gi" });
    expect(again).toMatchObject({ created: false, namespace: { ready: true } });
    // Not ready before: the first label apply does not claim readiness.
    expect(JSON.parse(fake.requests.find((r) => r.method === "PATCH")!.body).metadata.labels).not.toHaveProperty([
      "paas.io/ready",
    ]);
  });

  it("waits for new RoleBindings to take effect, and gives up with FAILED_PRECONDITION", async () => {
    let answers = 0;
    fake.handler = provisioning({ allowed: () => ++answers > 2 });
    await kube.ensureNamespace("paas-ws-a", { cpu: "1", memory: "1Gi", storage: "1Gi" });
    expect(answers).toBe(4); // two denials, then the deployer and the operator allowed

    const never = createKubeClient({ kubeConfig: fake.kubeConfig(), logger, requestTimeoutMs: 500, rbacSettleMs: 200 });
    fake.handler = provisioning({ allowed: () => false });
    await expect(never.ensureNamespace("paas-ws-a", { cpu: "1", memory: "1Gi", storage: "1Gi" })).rejects.toMatchObject(
      {
        kind: "failed_precondition",
        message: expect.stringContaining("check ClusterRole paas-tenant-deployer (k8s/rbac.yaml)"),
      },
    );
  });

  it("refuses to provision without the tenant ClusterRoles (this service never creates cluster-scoped objects)", async () => {
    fake.handler = provisioning({
      over: (req, res) => {
        if (req.path.endsWith("/clusterroles/paas-tenant-deployer")) {
          status(res, 404, "NotFound", "not found");
          return true;
        }
        return false;
      },
    });
    await expect(kube.ensureNamespace("paas-ws-a", { cpu: "1", memory: "1Gi", storage: "1Gi" })).rejects.toMatchObject({
      kind: "failed_precondition",
      message:
        "ClusterRole paas-tenant-deployer is missing: apply k8s/rbac.yaml (the tenant roles) before creating namespaces",
    });
    expect(fake.requests.some((r) => r.path === "/api/v1/namespaces")).toBe(false);
  });

  it("refuses to adopt a namespace someone else created", async () => {
    fake.handler = provisioning({ existing: nsObject("paas-ws-a", {}) });
    await expect(kube.ensureNamespace("paas-ws-a", { cpu: "1", memory: "1Gi", storage: "1Gi" })).rejects.toMatchObject({
      kind: "permission_denied",
      message: 'namespace "paas-ws-a" exists and is not managed by this service',
    });
    expect(fake.requests.some((r) => r.method === "PATCH")).toBe(false);
  });

  it("reports readiness and Pod Security level of managed namespaces", async () => {
    fake.handler = (req, res) =>
      req.path.endsWith("/paas-ws-a")
        ? json(res, 200, nsObject("paas-ws-a", { ...MANAGED, "pod-security.kubernetes.io/enforce": "baseline" }))
        : status(res, 404, "NotFound", "not found");
    expect(await kube.getNamespace("paas-ws-a")).toMatchObject({ ready: false, podSecurity: "baseline" });
  });

  it("rejects bad names and quantities before calling the API", async () => {
    await expect(kube.ensureNamespace("Paas_WS", { cpu: "1", memory: "1Gi", storage: "1Gi" })).rejects.toMatchObject({
      kind: "invalid_argument",
    });
    await expect(
      kube.ensureNamespace("paas-ws-a", { cpu: "lots", memory: "1Gi", storage: "1Gi" }),
    ).rejects.toMatchObject({ kind: "invalid_argument" });
    expect(fake.requests).toHaveLength(0);
  });

  it("hides namespaces it does not manage", async () => {
    fake.handler = (req, res) =>
      req.path.endsWith("/other") ? json(res, 200, nsObject("other", {})) : status(res, 404, "NotFound", "not found");
    await expect(kube.getNamespace("other")).rejects.toMatchObject({
      kind: "not_found",
      message: 'namespace "other" not found',
    });
    await expect(kube.getNamespace("absent")).rejects.toMatchObject({
      kind: "not_found",
      message: 'namespace "absent" not found',
    });
    await expect(kube.deleteNamespace("other")).rejects.toMatchObject({ kind: "not_found" });
    expect(fake.requests.some((r) => r.method === "DELETE")).toBe(false);
  });

  it("deletes only the namespace it checked (uid precondition)", async () => {
    fake.handler = (_req, res) => json(res, 200, nsObject("paas-ws-a"));
    await kube.deleteNamespace("paas-ws-a");
    const del = fake.requests.find((r) => r.method === "DELETE")!;
    expect(JSON.parse(del.body)).toEqual({ preconditions: { uid: "uid-paas-ws-a" } });
  });

  it("lists managed namespaces by prefix with their quotas", async () => {
    fake.handler = (req, res) => {
      if (req.path === "/api/v1/namespaces") {
        expect(req.query.get("labelSelector")).toBe("app.kubernetes.io/managed-by=paas-operator");
        return json(res, 200, { items: [nsObject("paas-ws-b"), nsObject("paas-ws-a"), nsObject("other-x")] });
      }
      expect(req.query.get("fieldSelector")).toBe("metadata.name=paas-quota");
      json(res, 200, {
        items: [{ metadata: { name: "paas-quota", namespace: "paas-ws-a" }, spec: { hard: { "limits.cpu": "1" } } }],
      });
    };
    const list = await kube.listNamespaces("paas-ws-");
    expect(list.map((n) => [n.name, n.quota.length])).toEqual([
      ["paas-ws-a", 1],
      ["paas-ws-b", 0],
    ]);
  });

  it("times out requests the server never answers", async () => {
    fake.handler = () => {};
    await expect(kube.getNamespace("paas-ws-a")).rejects.toMatchObject({ kind: "unavailable" });
  });
});

describe("release reads", () => {
  it("lists a release's pods: its labels, older charts' labels, and what its workloads select", async () => {
    const manifest =
      "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web-podinfo}\nspec:\n  selector:\n    matchLabels: {app.kubernetes.io/name: web-podinfo}\n";
    fake.handler = (req, res) => {
      if (req.path.endsWith("/secrets")) return json(res, 200, { items: [helmSecret(1, "deployed", { manifest })] });
      json(res, 200, {
        items: [
          pod("web-b"),
          pod("web-a"),
          pod("old-1", { legacy: true }),
          pod("web-podinfo-x", { labels: { "app.kubernetes.io/name": "web-podinfo" } }),
          pod("api-1", { release: "api" }),
        ],
      });
    };
    const pods = await kube.listReleasePods("paas-ws-a", "web");
    expect(pods.map((p) => p.name)).toEqual(["old-1", "web-a", "web-b", "web-podinfo-x"]);
    const podList = fake.requests.find((r) => r.path.endsWith("/pods"))!;
    expect(podList.query.get("labelSelector")).toBeNull();
  });

  it("reads the newest stored revision, and undefined when there is none", async () => {
    const enc = (version: number, status: string) =>
      Buffer.from(
        gzipSync(
          JSON.stringify({ name: "web", version, info: { status }, chart: { metadata: { name: "podinfo" } } }),
        ).toString("base64"),
      ).toString("base64");
    const sec = (v: number, s: string) => ({
      type: "helm.sh/release.v1",
      metadata: {
        name: `sh.helm.release.v1.web.v${v}`,
        labels: { owner: "helm", name: "web", version: String(v), status: s },
      },
      data: { release: enc(v, s) },
    });
    fake.handler = (_req, res) => json(res, 200, { items: [sec(1, "superseded"), sec(2, "deployed")] });
    expect(await kube.getStoredRelease("paas-ws-a", "web")).toMatchObject({
      release: { revision: 2, status: "deployed", chart: "podinfo" },
    });
    expect(fake.requests[0]!.query.get("labelSelector")).toBe("owner=helm,name=web");
    fake.handler = (_req, res) => json(res, 200, { items: [] });
    expect(await kube.getStoredRelease("paas-ws-a", "web")).toBeUndefined();
  });

  it("refuses release names that could bend a label selector", async () => {
    await expect(kube.listReleasePods("paas-ws-a", "web,owner=x")).rejects.toMatchObject({ kind: "invalid_argument" });
  });
});

describe("watchRelease over HTTP", () => {
  it("streams watch events and closes every connection on abort", async () => {
    const writers: Record<string, (type: string, object: unknown) => void> = {};
    fake.handler = (req, res) => {
      const kind = req.path.endsWith("/pods") ? "pods" : "secrets";
      if (req.query.get("watch") !== "1") return json(res, 200, { metadata: { resourceVersion: "10" }, items: [] });
      expect(req.query.get("resourceVersion")).toBe("10");
      expect(req.query.get("allowWatchBookmarks")).toBe("true");
      if (kind === "secrets") expect(req.query.get("labelSelector")).toBe("owner=helm,name=web");
      else expect(req.query.get("labelSelector")).toBeNull();
      writers[kind] = startWatch(res);
    };
    const ac = new AbortController();
    const it = kube.watchRelease("paas-ws-a", "web", ac.signal)[Symbol.asyncIterator]();
    expect((await it.next()).value).toEqual({ kind: "snapshot", release: undefined, pods: [] });
    const next = it.next();
    while (!writers["pods"] || !writers["secrets"]) await new Promise((r) => setTimeout(r, 5));
    expect(fake.open).toBe(2);
    writers["pods"]("ADDED", pod("web-a"));
    expect(((await next).value as ReleaseWatchEvent).kind).toBe("pod_added");
    const pending = it.next();
    ac.abort();
    expect((await pending).done).toBe(true);
    for (let i = 0; i < 50 && fake.open > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(fake.open).toBe(0);
  });

  it("resumes a dropped watch from the last resourceVersion it saw", async () => {
    const watches: {
      rv: string | null;
      res: import("node:http").ServerResponse;
      write: (t: string, o: unknown) => void;
    }[] = [];
    fake.handler = (req, res) => {
      if (req.query.get("watch") !== "1") return json(res, 200, { metadata: { resourceVersion: "10" }, items: [] });
      if (req.path.endsWith("/pods"))
        watches.push({ rv: req.query.get("resourceVersion"), res, write: startWatch(res) });
      else startWatch(res);
    };
    const ac = new AbortController();
    const it = kube.watchRelease("paas-ws-a", "web", ac.signal)[Symbol.asyncIterator]();
    await it.next(); // snapshot
    while (watches.length < 1) await new Promise((r) => setTimeout(r, 5));
    const p = pod("web-a");
    p.metadata!.resourceVersion = "17";
    watches[0]!.write("ADDED", p);
    expect(((await it.next()).value as ReleaseWatchEvent).kind).toBe("pod_added");
    watches[0]!.res.destroy(); // connection drops mid-stream
    while (watches.length < 2) await new Promise((r) => setTimeout(r, 5));
    expect(watches[1]!.rv).toBe("17");
    watches[1]!.write("MODIFIED", pod("web-a", { ready: true }));
    expect(((await it.next()).value as ReleaseWatchEvent).kind).toBe("pod_modified");
    ac.abort();
    await it.next();
    expect(fake.requests.filter((r) => r.path.endsWith("/pods") && r.query.get("watch") !== "1")).toHaveLength(1); // no re-list
  });

  it("fails with a domain error when the first list is refused", async () => {
    fake.handler = (_req, res) => status(res, 403, "Forbidden", 'User "x" cannot list pods');
    const it = kube.watchRelease("paas-ws-a", "web", new AbortController().signal)[Symbol.asyncIterator]();
    await expect(it.next()).rejects.toMatchObject({ kind: "permission_denied" });
  });
});
