/**
 * Real charts under the tenant identity (helm impersonating paas-deployer) and the
 * product's default Pod Security level "restricted", checked on the cluster: pods Running,
 * the charts' own NetworkPolicies dropped, nothing outside the namespace.
 *
 * Pod Security level each chart needs (also compared with the API server's own admission):
 *   postgresql 17.1.0, redis 23.1.1, nginx 22.1.1   restricted (Bitnami securityContexts)
 *   podinfo 6.13/6.14                               baseline with default values (no
 *                                                   securityContext); restricted with
 *                                                   securityContext values (below)
 *   odoo 28.2.11                                    baseline: runs as root and adds CHOWN,
 *                                                   DAC_OVERRIDE, FOWNER, SETGID, SETUID,
 *                                                   SYS_CHROOT
 *   node-exporter 4.5.20                            none (hostNetwork, hostPID, hostPath)
 *   nginx-ingress-controller 12.0.9                 refused anyway: cluster-scoped objects
 * A namespace's level is its own (pod-security.kubernetes.io/enforce); POD_SECURITY_LEVEL is
 * the default of CreateNamespace, and KubeClient.ensureNamespace takes a per-namespace one.
 */
import type { JsonObject } from "../../src/domain/release.ts";
import { Code } from "@connectrpc/connect";
import * as k8s from "@kubernetes/client-node";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPaasClient, type PaasClient } from "../../clients/paas-client.ts";
import { ReleaseStatus } from "../../gen/paas/v1/release_pb.js";
import { createKubeClient } from "../../src/kube/kube-client.ts";
import { startServer, testbedEnv, uniqueNamespace, type ServerProcess } from "../support/testbed.ts";
import { failure } from "../support/failure.ts";

const tb = testbedEnv();
const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
const core = kc.makeApiClient(k8s.CoreV1Api);
const networking = kc.makeApiClient(k8s.NetworkingV1Api);
const oci = (chart: string) => `oci://${tb.OCI_REGISTRY}/charts/${chart}`;

// podinfo's values for the restricted profile.
const PODINFO_RESTRICTED = {
  podSecurityContext: { runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: "RuntimeDefault" } },
  securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
};

describe.each([
  { label: "Helm v4", major: 4, binary: tb.HELM_BINARY },
  { label: "Helm v3", major: 3, binary: tb.HELM_V3_BINARY },
])("real charts, restricted, with $label", ({ major, binary }) => {
  let server: ServerProcess;
  let paas: PaasClient;
  const ns = uniqueNamespace(`charts${major}`);
  const baselineNs = uniqueNamespace(`base${major}`);

  beforeAll(async () => {
    server = await startServer({
      HELM_BINARY: binary,
      POD_SECURITY_LEVEL: "restricted",
      CHART_CATALOG_FILE: "",
      CHART_CATALOG: "",
    });
    paas = createPaasClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, protocol: "connect" });
    const made = await paas.namespaces.createNamespace({
      name: ns,
      cpuLimit: "8",
      memoryLimit: "16Gi",
      storageLimit: "20Gi",
    });
    expect(made.created).toBe(true);
  });

  afterAll(async () => {
    for (const name of [ns, baselineNs]) await core.deleteNamespace({ name }).catch(() => undefined);
    expect(await server.stop()).toBe(0);
  });

  async function installed(name: string, chart: string, version: string, values: JsonObject = {}, namespace = ns) {
    const res = await paas.releases.installRelease({
      namespace,
      name,
      chart: oci(chart),
      version,
      values,
      wait: true,
      timeout: { seconds: 180n, nanos: 0 },
    });
    expect(res.release?.status).toBe(ReleaseStatus.DEPLOYED);
    const status = await paas.releases.getReleaseStatus({ namespace, name });
    expect(status.pods.length, `${name} pods`).toBeGreaterThan(0);
    for (const pod of status.pods)
      expect(pod, `${name} pod ${pod.name}`).toMatchObject({ phase: "Running", podReady: true });
    // Every helm write impersonated the deployer.
    const runs = server.logs.filter(
      (l) => l.msg === "helm install started" && Array.isArray(l.helm) && (l.helm as string[])[1] === name,
    );
    expect((runs.at(-1)?.helm as string[]).join(" ")).toContain(
      `--kube-as-user system:serviceaccount:${namespace}:paas-deployer`,
    );
  }

  it("namespaces are restricted, ready, with the deployer and the default-deny policy", async () => {
    const labels = (await core.readNamespace({ name: ns })).metadata?.labels ?? {};
    expect(labels).toMatchObject({ "pod-security.kubernetes.io/enforce": "restricted", "paas.io/ready": "true" });
    const policies = await networking.listNamespacedNetworkPolicy({ namespace: ns });
    expect(policies.items.map((p) => p.metadata?.name)).toEqual(["paas-default-deny"]);
  });

  it("postgresql (persistence off) installs; its NetworkPolicy is dropped", async () => {
    await installed("db", "postgresql", "17.1.0", {
      primary: { persistence: { enabled: false } },
      auth: { postgresPassword: "isolation-pw" },
    });
    const policies = await networking.listNamespacedNetworkPolicy({ namespace: ns });
    expect(policies.items.map((p) => p.metadata?.name)).toEqual(["paas-default-deny"]);
  });

  it("redis (persistence off) installs", async () => {
    await installed("cache", "redis", "23.1.1", {
      architecture: "standalone",
      master: { persistence: { enabled: false } },
    });
  });

  it("nginx installs", async () => {
    await installed("web", "nginx", "22.1.1", { service: { type: "ClusterIP" } });
  });

  it("podinfo: default values need baseline (refused, naming the Deployment); restricted values install", async () => {
    const err = await failure(
      paas.releases.installRelease({ namespace: ns, name: "info", chart: oci("podinfo"), version: "6.14.1" }),
    );
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain(
      `Deployment "info-podinfo" in namespace "${ns}": its pods violate the namespace's Pod Security level "restricted": container "podinfo": securityContext.allowPrivilegeEscalation must be false`,
    );
    await installed("info", "podinfo", "6.14.1", PODINFO_RESTRICTED);
  });

  it("odoo needs baseline: refused in a restricted namespace, installs in a baseline one", async () => {
    const values = {
      service: { type: "ClusterIP" },
      persistence: { enabled: false },
      postgresql: { primary: { persistence: { enabled: false } } },
    };
    const err = await failure(
      paas.releases.installRelease({ namespace: ns, name: "erp", chart: oci("odoo"), version: "28.2.11", values }),
    );
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(
      /Deployment "erp-odoo" in namespace "[^"]+": its pods violate the namespace's Pod Security level "restricted": .*runAsNonRoot must be true/,
    );
    // Per-namespace level (no proto field yet: through the kube adapter, as CreateNamespace would).
    const kube = createKubeClient({ logger: pino({ level: "silent" }) });
    const made = await kube.ensureNamespace(
      baselineNs,
      { cpu: "8", memory: "16Gi", storage: "20Gi" },
      { podSecurity: "baseline" },
    );
    expect(made.namespace).toMatchObject({ ready: true, podSecurity: "baseline" });
    // odoo's default Service type is LoadBalancer, which tenant quotas set to 0.
    const lb = await failure(
      paas.releases.installRelease({
        namespace: baselineNs,
        name: "erp",
        chart: oci("odoo"),
        version: "28.2.11",
        values: { ...values, service: {} },
      }),
    );
    expect(lb.code).toBe(Code.ResourceExhausted);
    expect(lb.rawMessage).toBe(
      `Resource quota of namespace ${baselineNs} allows no Services of type LoadBalancer: use type ClusterIP (and an Ingress)`,
    );
    await installed("erp", "odoo", "28.2.11", values, baselineNs);
  });

  it("left nothing outside the namespaces", async () => {
    const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    const crbs = await rbac.listClusterRoleBinding();
    expect(crbs.items.map((b) => b.metadata?.name).filter((n) => n?.includes(ns) || n?.includes(baselineNs))).toEqual(
      [],
    );
    expect(JSON.stringify(server.logs)).not.toContain("isolation-pw");
  });
});
