/**
 * The tenant NetworkPolicy's ingress allowance (INGRESS_NAMESPACE_SELECTOR, src/kube/tenancy/namespaces.ts)
 * on the testbed's real API server: after ensureNamespace the policy holds the rule for the
 * configured selector (the default one, a custom set-based one), a client configured with
 * none removes it again on repair, and the API server accepts the generated selector.
 * (kwok runs no CNI: that traffic really flows is not observable here, only the object.)
 */
import { randomBytes } from "node:crypto";
import { CoreV1Api, KubeConfig, NetworkingV1Api, type V1NetworkPolicy } from "@kubernetes/client-node";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKubeClient, type KubeClientOptions } from "../../../../src/kube/kube-client.ts";
import { ensureTenantRoles } from "../../../support/tenant-roles.ts";

const TENANT = `paas-ws-netpol-${randomBytes(3).toString("hex")}`;
const QUOTA = { cpu: "1", memory: "1Gi", storage: "1Gi" };
let kc: KubeConfig;
let networking: NetworkingV1Api;
let core: CoreV1Api;

beforeAll(async () => {
  if (!process.env.KUBECONFIG) throw new Error("KUBECONFIG is not set: source .testbed/env (npm run testbed:up first)");
  kc = new KubeConfig();
  kc.loadFromDefault();
  networking = kc.makeApiClient(NetworkingV1Api);
  core = kc.makeApiClient(CoreV1Api);
  await ensureTenantRoles();
});

afterAll(async () => {
  await core?.deleteNamespace({ name: TENANT }).catch(() => undefined);
});

async function provisioned(over: Partial<KubeClientOptions>): Promise<V1NetworkPolicy> {
  const kube = createKubeClient({ kubeConfig: kc, logger: pino({ level: "silent" }), ...over });
  const { namespace } = await kube.ensureNamespace(TENANT, QUOTA);
  expect(namespace.ready).toBe(true);
  return networking.readNamespacedNetworkPolicy({ name: "paas-default-deny", namespace: TENANT });
}

const SAME_NAMESPACE = { _from: [{ podSelector: {} }] };

describe("tenant NetworkPolicy after ensureNamespace", () => {
  it("admits the default ingress controller namespace (kubernetes.io/metadata.name=ingress-nginx)", async () => {
    const policy = await provisioned({});
    expect(policy.spec?.policyTypes).toEqual(["Ingress", "Egress"]);
    expect(policy.spec?.ingress).toEqual([
      SAME_NAMESPACE,
      { _from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "ingress-nginx" } } }] },
    ]);
  });

  it("takes a configured set-based selector, replacing the previous rule", async () => {
    const policy = await provisioned({
      ingressNamespaceSelector: "kubernetes.io/metadata.name in (traefik,ingress-nginx),env!=dev",
    });
    expect(policy.spec?.ingress).toEqual([
      SAME_NAMESPACE,
      {
        _from: [
          {
            namespaceSelector: {
              matchExpressions: [
                { key: "kubernetes.io/metadata.name", operator: "In", values: ["traefik", "ingress-nginx"] },
                { key: "env", operator: "NotIn", values: ["dev"] },
              ],
            },
          },
        ],
      },
    ]);
  });

  it("with an empty selector, repair removes the allowance: same namespace and DNS only", async () => {
    const policy = await provisioned({ ingressNamespaceSelector: "" });
    expect(policy.spec?.ingress).toEqual([SAME_NAMESPACE]);
    expect(policy.spec?.egress).toHaveLength(2);
  });
});
