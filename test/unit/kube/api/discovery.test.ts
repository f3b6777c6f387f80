import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  DiscoveryCache,
  fetchKindScopes,
  scopesFromAggregated,
  scopesFromResourceList,
} from "../../../../src/kube/api/discovery.ts";
import { FakeApiServer, json, status } from "../../../support/fake-apiserver.ts";

// Which kinds are namespaced, read from the API server's discovery (aggregated v2, and the
// legacy per-group-version lists for older servers), cached with a TTL.

const AGG_CORE = {
  kind: "APIGroupDiscoveryList",
  items: [
    {
      metadata: { name: "" },
      versions: [
        {
          version: "v1",
          resources: [
            { resource: "namespaces", responseKind: { kind: "Namespace" }, scope: "Cluster" },
            { resource: "configmaps", responseKind: { kind: "ConfigMap" }, scope: "Namespaced" },
            {
              resource: "pods",
              responseKind: { kind: "Pod" },
              scope: "Namespaced",
              subresources: [{ subresource: "log" }],
            },
          ],
        },
      ],
    },
  ],
};
const AGG_APIS = {
  kind: "APIGroupDiscoveryList",
  items: [
    {
      metadata: { name: "rbac.authorization.k8s.io" },
      versions: [
        {
          version: "v1",
          resources: [
            { resource: "clusterrolebindings", responseKind: { kind: "ClusterRoleBinding" }, scope: "Cluster" },
            { resource: "rolebindings", responseKind: { kind: "RoleBinding" }, scope: "Namespaced" },
          ],
        },
      ],
    },
    {
      metadata: { name: "example.com" },
      versions: [
        {
          version: "v1beta1",
          resources: [{ resource: "widgets", responseKind: { kind: "Widget" }, scope: "Namespaced" }],
        },
      ],
    },
  ],
};

let fake: FakeApiServer;
beforeEach(async () => {
  fake = await FakeApiServer.start();
});
afterEach(async () => {
  await fake.close();
});

describe("scopes", () => {
  it("read aggregated discovery: apiVersion/Kind → namespaced", () => {
    expect({ ...scopesFromAggregated(AGG_CORE), ...scopesFromAggregated(AGG_APIS) }).toEqual({
      "v1/Namespace": false,
      "v1/ConfigMap": true,
      "v1/Pod": true,
      "rbac.authorization.k8s.io/v1/ClusterRoleBinding": false,
      "rbac.authorization.k8s.io/v1/RoleBinding": true,
      "example.com/v1beta1/Widget": true,
    });
  });

  it("read a legacy APIResourceList, skipping subresources", () => {
    expect(
      scopesFromResourceList({
        groupVersion: "apps/v1",
        resources: [
          { name: "deployments", kind: "Deployment", namespaced: true },
          { name: "deployments/scale", kind: "Scale", namespaced: true },
        ],
      }),
    ).toEqual({ "apps/v1/Deployment": true });
  });
});

describe("fetchKindScopes", () => {
  it("asks /api and /apis for aggregated discovery", async () => {
    fake.handler = (req, res) => json(res, 200, req.path === "/api" ? AGG_CORE : AGG_APIS);
    const scopes = await fetchKindScopes(fake.kubeConfig(), AbortSignal.timeout(2000));
    expect(scopes["rbac.authorization.k8s.io/v1/ClusterRoleBinding"]).toBe(false);
    expect(fake.requests.map((r) => r.path)).toEqual(["/api", "/apis"]);
    expect(fake.requests[0]!.headers.accept).toContain("as=APIGroupDiscoveryList");
  });

  it("falls back to one request per group version on servers without it", async () => {
    fake.handler = (req, res) => {
      if (req.path === "/api") return json(res, 200, { kind: "APIVersions", versions: ["v1"] });
      if (req.path === "/apis")
        return json(res, 200, {
          kind: "APIGroupList",
          groups: [{ name: "apps", versions: [{ groupVersion: "apps/v1" }] }],
        });
      if (req.path === "/api/v1")
        return json(res, 200, {
          groupVersion: "v1",
          resources: [{ name: "namespaces", kind: "Namespace", namespaced: false }],
        });
      if (req.path === "/apis/apps/v1")
        return json(res, 200, {
          groupVersion: "apps/v1",
          resources: [{ name: "deployments", kind: "Deployment", namespaced: true }],
        });
      status(res, 404, "NotFound", "no");
    };
    expect(await fetchKindScopes(fake.kubeConfig(), AbortSignal.timeout(2000))).toEqual({
      "v1/Namespace": false,
      "apps/v1/Deployment": true,
    });
  });
});

describe("DiscoveryCache", () => {
  it("shares one fetch, keeps it for the TTL, fetches again after invalidate", async () => {
    let now = 0;
    let loads = 0;
    const cache = new DiscoveryCache({ load: async () => ({ [`v1/K${++loads}`]: true }), ttlMs: 1000, now: () => now });
    const [a, b] = await Promise.all([cache.get(), cache.get()]);
    expect(a).toBe(b);
    expect(loads).toBe(1);
    now = 999;
    await cache.get();
    expect(loads).toBe(1);
    now = 1000;
    expect(await cache.get()).toEqual({ "v1/K2": true });
    cache.invalidate();
    expect(await cache.get()).toEqual({ "v1/K3": true });
  });

  it("does not cache failures, and reports them as Kubernetes errors", async () => {
    let fail = true;
    const cache = new DiscoveryCache({
      load: async () => {
        if (fail) throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
        return { "v1/Pod": true };
      },
    });
    await expect(cache.get()).rejects.toMatchObject({
      kind: "unavailable",
      message: "read API discovery: Kubernetes API unreachable",
    });
    fail = false;
    expect(await cache.get()).toEqual({ "v1/Pod": true });
  });
});
