import { KubeConfig } from "@kubernetes/client-node";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { createKubeClient } from "../../../../src/kube/kube-client.ts";
import {
  DEFAULT_INGRESS_NAMESPACE_SELECTOR,
  parseNamespaceSelector,
  tenantNetworkPolicy,
} from "../../../../src/kube/tenancy/namespaces.ts";
import { selectorMatches } from "../../../../src/domain/selectors.ts";

const LABELS = { "app.kubernetes.io/managed-by": "paas-operator" };

describe("the tenant NetworkPolicy's ingress allowance", () => {
  it("by default admits the ingress-nginx namespace, on top of same-namespace traffic and DNS", () => {
    expect(DEFAULT_INGRESS_NAMESPACE_SELECTOR).toBe("kubernetes.io/metadata.name=ingress-nginx");
    const policy = tenantNetworkPolicy(
      "paas-ws-a",
      LABELS,
      parseNamespaceSelector(DEFAULT_INGRESS_NAMESPACE_SELECTOR),
    ) as any;
    expect(policy).toMatchObject({
      kind: "NetworkPolicy",
      metadata: { name: "paas-default-deny", namespace: "paas-ws-a", labels: LABELS },
    });
    expect(policy.spec.policyTypes).toEqual(["Ingress", "Egress"]);
    expect(policy.spec.ingress).toEqual([
      { from: [{ podSelector: {} }] },
      { from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "ingress-nginx" } } }] },
    ]);
    // Egress is unchanged: same namespace and DNS only.
    expect(policy.spec.egress).toHaveLength(2);
    expect(JSON.stringify(policy.spec.egress)).not.toContain("ingress-nginx");
  });

  it("without a selector keeps the plain default deny", () => {
    const policy = tenantNetworkPolicy("paas-ws-a", LABELS, parseNamespaceSelector("  ")) as any;
    expect(policy.spec.ingress).toEqual([{ from: [{ podSelector: {} }] }]);
  });

  it("reads kubectl's selector syntax into matchLabels and matchExpressions", () => {
    expect(parseNamespaceSelector("team=ingress, tier==edge")).toEqual({
      matchLabels: { team: "ingress", tier: "edge" },
    });
    expect(
      parseNamespaceSelector(
        "kubernetes.io/metadata.name in (traefik, ingress-nginx),env!=dev,!legacy,example.com/ingress",
      ),
    ).toEqual({
      matchExpressions: [
        { key: "kubernetes.io/metadata.name", operator: "In", values: ["traefik", "ingress-nginx"] },
        { key: "env", operator: "NotIn", values: ["dev"] },
        { key: "legacy", operator: "DoesNotExist" },
        { key: "example.com/ingress", operator: "Exists" },
      ],
    });
    expect(parseNamespaceSelector("a=b,c notin (x)")).toEqual({
      matchLabels: { a: "b" },
      matchExpressions: [{ key: "c", operator: "NotIn", values: ["x"] }],
    });
  });

  it("refuses selectors that are malformed, admit every namespace, or use the labels of tenant namespaces", () => {
    const refused = (raw: string, why: RegExp) => {
      let err: unknown;
      try {
        parseNamespaceSelector(raw);
      } catch (e) {
        err = e;
      }
      expect(err, raw).toMatchObject({ kind: "invalid_argument", message: expect.stringMatching(why) });
    };
    refused("a=b,", /empty term/);
    refused("a in (b", /unbalanced/);
    refused("a in ((b))", /unbalanced/);
    refused("a=b c", /cannot read/);
    refused("-a=b", /not a label key/);
    refused("a=-b", /not a label value/);
    refused("a in (b,)", /label values/);
    refused("a=b,a=c", /two values/);
    // Only negations (or bare existence) would match tenant namespaces as well.
    refused("env!=dev", /must name the namespaces it admits/);
    refused("kubernetes.io/metadata.name", /must name the namespaces it admits/);
    refused("app.kubernetes.io/managed-by=paas-operator", /label of tenant namespaces/);
    refused("paas.io/ready=true", /label of tenant namespaces/);
    refused("pod-security.kubernetes.io/enforce=restricted,team=x", /label of tenant namespaces/);
    // The managed label configured for this service, whatever it is.
    expect(() => parseNamespaceSelector("owner=paas", "owner")).toThrow(/label of tenant namespaces/);
  });

  it("evaluates selectors like the API server does", () => {
    const sel = parseNamespaceSelector("kubernetes.io/metadata.name in (ingress-nginx,traefik),env!=dev,!legacy")!;
    expect(selectorMatches(sel, { "kubernetes.io/metadata.name": "traefik" })).toBe(true);
    expect(selectorMatches(sel, { "kubernetes.io/metadata.name": "traefik", env: "dev" })).toBe(false);
    expect(selectorMatches(sel, { "kubernetes.io/metadata.name": "traefik", legacy: "" })).toBe(false);
    expect(selectorMatches(sel, { "kubernetes.io/metadata.name": "paas-ws-a" })).toBe(false);
    expect(selectorMatches(parseNamespaceSelector("team=ingress,x")!, { team: "ingress", x: "1" })).toBe(true);
    expect(selectorMatches(parseNamespaceSelector("team=ingress,x")!, { team: "ingress" })).toBe(false);
  });

  it("is checked when the client is made, and refuses a namespace the selector would admit before touching the cluster", async () => {
    const kubeConfig = new KubeConfig();
    // Nothing listens there: the refusal must come before any request.
    kubeConfig.loadFromOptions({
      clusters: [{ name: "c", server: "https://127.0.0.1:1" }],
      users: [{ name: "u", token: "t" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    const logger = pino({ level: "silent" });
    expect(() => createKubeClient({ kubeConfig, logger, ingressNamespaceSelector: "env!=dev" })).toThrow(
      /must name the namespaces it admits/,
    );
    const kube = createKubeClient({
      kubeConfig,
      logger,
      ingressNamespaceSelector: "kubernetes.io/metadata.name in (ingress-nginx, paas-ws-victim)",
    });
    await expect(
      kube.ensureNamespace("paas-ws-victim", { cpu: "1", memory: "1Gi", storage: "1Gi" }),
    ).rejects.toMatchObject({
      kind: "failed_precondition",
      message: expect.stringContaining('matches the tenant namespace "paas-ws-victim"'),
    });
  });
});
