import { describe, expect, it } from "vitest";
import { PaasError } from "../../../../src/errors.ts";
import {
  limitRangeManifest,
  parseQuantity,
  quotaItems,
  quotaManifest,
  validateQuota,
} from "../../../../src/kube/tenancy/quota.ts";

describe("parseQuantity", () => {
  it.each([
    ["2", 2],
    ["500m", 0.5],
    ["1.5", 1.5],
    ["4Gi", 4 * 2 ** 30],
    ["512Mi", 512 * 2 ** 20],
    ["1G", 1e9],
    ["100k", 1e5],
    ["1e3", 1000],
    [".5", 0.5],
  ])("%s = %d", (q, v) => {
    expect(parseQuantity(q)).toBeCloseTo(v);
  });

  it.each(["", "abc", "-1", "1.2.3", "4GB", "1 Gi"])("rejects %j", (q) => {
    expect(parseQuantity(q)).toBeNaN();
  });
});

describe("validateQuota", () => {
  it("accepts Kubernetes quantities and rejects anything else as invalid_argument", () => {
    expect(() => validateQuota({ cpu: "2", memory: "4Gi", storage: "10Gi" })).not.toThrow();
    const err = (() => {
      try {
        validateQuota({ cpu: "2 cores", memory: "4Gi", storage: "10Gi" });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(PaasError);
    expect((err as PaasError).kind).toBe("invalid_argument");
    expect((err as PaasError).message).toContain("cpu");
  });
});

describe("manifests", () => {
  const labels = { "app.kubernetes.io/managed-by": "paas-operator" };

  it("caps requests and limits alike, plus storage, claims and object counts", () => {
    expect(quotaManifest("paas-ws-a", { cpu: "2", memory: "4Gi", storage: "10Gi" }, labels)).toEqual({
      apiVersion: "v1",
      kind: "ResourceQuota",
      metadata: { name: "paas-quota", namespace: "paas-ws-a", labels },
      spec: {
        hard: {
          "requests.cpu": "2",
          "limits.cpu": "2",
          "requests.memory": "4Gi",
          "limits.memory": "4Gi",
          "requests.storage": "10Gi",
          persistentvolumeclaims: "10",
          "services.nodeports": "0",
          "services.loadbalancers": "0",
          "count/secrets": "100",
          "count/configmaps": "100",
        },
      },
    });
  });

  it('gives default requests/limits that fit in the quota, in wire JSON ("default", not "_default")', () => {
    const big = limitRangeManifest("ns", { cpu: "4", memory: "8Gi", storage: "1Gi" }, labels);
    expect(big["spec"]).toEqual({
      limits: [
        {
          type: "Container",
          defaultRequest: { cpu: "100m", memory: "128Mi" },
          default: { cpu: "500m", memory: "512Mi" },
        },
      ],
    });
    const small = limitRangeManifest("ns", { cpu: "250m", memory: "100Mi", storage: "1Gi" }, labels);
    expect(small["spec"]).toEqual({
      limits: [
        {
          type: "Container",
          defaultRequest: { cpu: "100m", memory: "100Mi" },
          default: { cpu: "250m", memory: "100Mi" },
        },
      ],
    });
  });
});

describe("quotaItems", () => {
  it("pairs what we asked for with what is used, sorted", () => {
    expect(
      quotaItems({
        spec: { hard: { "requests.cpu": "2", "limits.memory": "4Gi" } },
        status: { hard: { "requests.cpu": "1" }, used: { "requests.cpu": "250m" } },
      }),
    ).toEqual([
      { resource: "limits.memory", hard: "4Gi", used: "" },
      { resource: "requests.cpu", hard: "2", used: "250m" },
    ]);
    expect(quotaItems(undefined)).toEqual([]);
  });
});
