/**
 * Hostile charts against the real server and cluster: each one is refused with the right
 * code and a message naming the object, and leaves nothing behind (the cluster is checked,
 * not only the answer). Charts: test/fixtures/hostile-charts/, pushed to the testbed's OCI
 * registry (the service refuses local paths).
 *
 * Who refuses what:
 *  - the render guard (helm post-renderer, same helm run, before anything is applied):
 *    FAILED_PRECONDITION naming kind/name/namespace. Helm v4 hands it the hooks too; helm v3
 *    does not (its post-renderer sees the manifests only);
 *  - RBAC, since helm runs as the namespace's paas-deployer ServiceAccount: PERMISSION_DENIED
 *    (v3 hooks, RBAC escalation, kinds the deployer has no rights on, lookup elsewhere);
 *  - Pod Security Admission (bare pods, v3 hook pods): FAILED_PRECONDITION;
 *  - the service itself, after the pull and before helm installs: a chart with crds/
 *    (FAILED_PRECONDITION, reason CHART_HAS_CRDS).
 * A refused install whose first revision was recorded as failed is uninstalled by the
 * service (src/helm/cli.ts), so nothing of it stays, not even a failed release.
 */
import { randomBytes } from "node:crypto";
import type { JsonObject } from "../../src/domain/release.ts";
import { Code, ConnectError } from "@connectrpc/connect";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPaasClient, type PaasClient } from "../../clients/paas-client.ts";
import { ReleaseStatus } from "../../gen/paas/v1/release_pb.js";
import { publishHostileCharts } from "../support/hostile-charts.ts";
import { startServer, testbedEnv, uniqueNamespace, type ServerProcess } from "../support/testbed.ts";
import { failure } from "../support/failure.ts";
import { reasonOf } from "../../src/errors.ts";

const tb = testbedEnv();
const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
const core = kc.makeApiClient(k8s.CoreV1Api);
const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
const apiext = kc.makeApiClient(k8s.ApiextensionsV1Api);
const networking = kc.makeApiClient(k8s.NetworkingV1Api);

const RUN = randomBytes(3).toString("hex");
const VICTIM_VALUE = `victim-secret-${RUN}`;
let charts: Record<string, string>;

beforeAll(async () => {
  charts = await publishHostileCharts(tb.HELM_BINARY, tb.OCI_REGISTRY, `hostile-${RUN}`);
  // A Secret in kube-system for lookup to try (removed in afterAll).
  await core.createNamespacedSecret({
    namespace: "kube-system",
    body: { metadata: { name: `victim-${RUN}` }, stringData: { password: VICTIM_VALUE } },
  });
});

afterAll(async () => {
  await core.deleteNamespacedSecret({ namespace: "kube-system", name: `victim-${RUN}` }).catch(() => undefined);
});

const absent = async (read: () => Promise<unknown>): Promise<boolean> =>
  read().then(
    () => false,
    (err: unknown) => {
      if ((err as { code?: number }).code === 404) return true;
      throw err;
    },
  );

async function helmRecords(namespace: string, release: string): Promise<string[]> {
  const list = await core.listNamespacedSecret({ namespace, labelSelector: `owner=helm,name=${release}` });
  return list.items.map((s) => `${s.metadata?.name}:${s.metadata?.labels?.status}`);
}

describe.each([
  { label: "Helm v4", major: 4, binary: tb.HELM_BINARY },
  { label: "Helm v3", major: 3, binary: tb.HELM_V3_BINARY },
])("hostile charts with $label", ({ major, binary }) => {
  let server: ServerProcess;
  let paas: PaasClient;
  const ns = uniqueNamespace(`hostile${major}`);
  const other = uniqueNamespace(`victim${major}`);
  let quotaBefore: unknown;

  beforeAll(async () => {
    // No chart catalogue: these tests are about what a chart that got through does.
    server = await startServer({
      HELM_BINARY: binary,
      POD_SECURITY_LEVEL: "restricted",
      CHART_CATALOG_FILE: "",
      CHART_CATALOG: "",
    });
    paas = createPaasClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, protocol: "connect" });
    await paas.namespaces.createNamespace({ name: ns });
    await paas.namespaces.createNamespace({ name: other });
    await core.createNamespacedSecret({
      namespace: other,
      body: { metadata: { name: "victim" }, stringData: { password: VICTIM_VALUE } },
    });
    await core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: "own" }, stringData: { password: "own-value" } },
    });
    quotaBefore = (await core.readNamespacedResourceQuota({ namespace: ns, name: "paas-quota" })).spec;
  });

  afterAll(async () => {
    for (const name of [ns, other]) await core.deleteNamespace({ name }).catch(() => undefined);
    expect(await server.stop()).toBe(0);
  });

  /** install runs one hostile install and returns its failure; nothing of the release may remain. */
  async function refusedInstall(release: string, chart: string, values: JsonObject = {}): Promise<ConnectError> {
    const err = await failure(
      paas.releases.installRelease({ namespace: ns, name: release, chart: charts[chart]!, version: "0.1.0", values }),
    );
    expect(await helmRecords(ns, release), `helm records of ${release}`).toEqual([]);
    const cms = await core.listNamespacedConfigMap({ namespace: ns });
    expect(cms.items.map((c) => c.metadata?.name).filter((n) => n?.startsWith(release))).toEqual([]);
    return err;
  }

  it("ClusterRoleBinding to cluster-admin in a template: refused by the render guard, nothing applied", async () => {
    const err = await refusedInstall("crb", "crb-template");
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toBe(
      `The chart was refused before anything was applied: ClusterRoleBinding "crb-${ns}-pwn": ClusterRoleBinding is cluster-scoped: a release may only create objects in its own namespace "${ns}"`,
    );
    expect(await absent(() => rbac.readClusterRoleBinding({ name: `crb-${ns}-pwn` }))).toBe(true);
  });

  it("ClusterRoleBinding in a pre-install hook: the guard (v4) or RBAC (v3, whose post-renderer never sees hooks)", async () => {
    const err = await refusedInstall("hook", "crb-hook");
    if (major === 4) {
      expect(err.code).toBe(Code.FailedPrecondition);
      expect(err.rawMessage).toContain(
        `ClusterRoleBinding "hook-${ns}-pwn" (pre-install hook): ClusterRoleBinding is cluster-scoped`,
      );
    } else {
      expect(err.code).toBe(Code.PermissionDenied);
      expect(err.rawMessage).toBe(`Permission denied for helm install of release hook in namespace ${ns}`);
      // helm recorded a failed release before the hook ran; the service uninstalled it.
      expect(
        server.logs.some(
          (l) => l.msg === "refused install uninstalled: nothing of it stays in the cluster" && l.release === "hook",
        ),
      ).toBe(true);
    }
    expect(await absent(() => rbac.readClusterRoleBinding({ name: `hook-${ns}-pwn` }))).toBe(true);
  });

  it("an object in kube-system, and in another tenant's namespace", async () => {
    for (const target of ["kube-system", other]) {
      const err = await refusedInstall(`plant-${target === other ? "other" : "sys"}`, "other-namespace", { target });
      expect(err.code).toBe(Code.FailedPrecondition);
      expect(err.rawMessage).toContain(
        `in namespace "${target}": it is in namespace "${target}": a release may only create objects in its own namespace "${ns}"`,
      );
      const planted = await core.listNamespacedConfigMap({ namespace: target });
      expect(planted.items.map((c) => c.metadata?.name).filter((n) => n?.startsWith("plant-"))).toEqual([]);
    }
  });

  it("a chart that ships a CRD in crds/ is refused before anything runs (CHART_HAS_CRDS), with or without a resource of it", async () => {
    for (const [release, withResource] of [
      ["crd", true],
      ["crdonly", false],
    ] as const) {
      const err = await refusedInstall(release, "crd", { withResource });
      expect(err.code).toBe(Code.FailedPrecondition);
      expect(reasonOf(err)).toBe("CHART_HAS_CRDS");
      expect(err.rawMessage).toBe(
        `Chart ${charts["crd"]} 0.1.0 ships CustomResourceDefinitions, which a tenant cannot install (they are cluster-wide: the platform installs them): crds/widgets.yaml (Widget.hostile.example.com)`,
      );
      expect(await absent(() => apiext.readCustomResourceDefinition({ name: "widgets.hostile.example.com" }))).toBe(
        true,
      );
    }
    // Refused after the pull, before helm install ran: no helm install or upgrade was started.
    const started = server.logs.filter(
      (l) =>
        l.msg === "helm install started" && Array.isArray(l.helm) && ["crd", "crdonly"].includes(String(l.helm[1])),
    );
    expect(started).toEqual([]);
    expect(server.logs.some((l) => l.msg === "helm pull" || l.msg === "helm install started")).toBe(true);
    // A CRD in templates/ is refused.
    const tpl = await refusedInstall("crdtpl", "crd-template");
    expect(tpl.code).toBe(Code.FailedPrecondition);
    expect(tpl.rawMessage).toContain(
      'CustomResourceDefinition "gadgets.hostile.example.com": CustomResourceDefinitions are cluster-wide',
    );
    expect(await absent(() => apiext.readCustomResourceDefinition({ name: "gadgets.hostile.example.com" }))).toBe(true);
  });

  it("lookup runs as the deployer: another namespace's Secret is forbidden, its value never stored", async () => {
    for (const victimNamespace of [other, "kube-system"]) {
      const victimName = victimNamespace === other ? "victim" : `victim-${RUN}`;
      const err = await refusedInstall(`loot-${victimNamespace === other ? "other" : "sys"}`, "lookup-secret", {
        victimNamespace,
        victimName,
      });
      expect(err.code).toBe(Code.PermissionDenied);
      expect(err.rawMessage).not.toContain(VICTIM_VALUE);
    }
    // helm said why (in the log only): the deployer may not read Secrets there.
    const forbidden = server.logs.filter(
      (l) =>
        typeof l.stderr === "string" &&
        l.stderr.includes(`User "system:serviceaccount:${ns}:paas-deployer" cannot get resource "secrets"`),
    );
    expect(forbidden.length).toBeGreaterThanOrEqual(2);
    expect(JSON.stringify(server.logs)).not.toContain(VICTIM_VALUE);
    // Control: lookup itself works, in the tenant's own namespace.
    const own = await paas.releases.installRelease({
      namespace: ns,
      name: "loot-own",
      chart: charts["lookup-secret"]!,
      version: "0.1.0",
      values: { victimNamespace: ns, victimName: "own" },
    });
    expect(own.release?.status).toBe(ReleaseStatus.DEPLOYED);
    const cm = await core.readNamespacedConfigMap({ namespace: ns, name: "loot-own-loot" });
    expect(cm.data?.loot).toContain(Buffer.from("own-value").toString("base64"));
    await paas.releases.uninstallRelease({ namespace: ns, name: "loot-own" });
  });

  it("a RoleBinding to cluster-admin inside the namespace: RBAC escalation prevention; the half-applied release is removed", async () => {
    const err = await refusedInstall("escalate", "rolebinding-admin");
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.rawMessage).toBe(
      `The install of release escalate would grant permissions the tenant does not hold in namespace ${ns}`,
    );
    // Its ServiceAccount was created before the RoleBinding was refused; the uninstall removed it.
    expect(await absent(() => core.readNamespacedServiceAccount({ namespace: ns, name: "escalate-sa" }))).toBe(true);
    expect(await absent(() => rbac.readNamespacedRoleBinding({ namespace: ns, name: "escalate-admin" }))).toBe(true);
  });

  it("a Namespace object (its own, relabelled) is refused; the namespace keeps its labels", async () => {
    const err = await refusedInstall("relabel", "namespace-object");
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain(`Namespace "${ns}": Namespace is cluster-scoped`);
    const labels = (await core.readNamespace({ name: ns })).metadata?.labels ?? {};
    expect(labels).toMatchObject({ "pod-security.kubernetes.io/enforce": "restricted", "paas.io/ready": "true" });
  });

  it("the tenant quota: overriding it is refused by the guard, adding one by RBAC; the quota is unchanged", async () => {
    const own = await refusedInstall("quota", "quota");
    expect(own.code).toBe(Code.FailedPrecondition);
    expect(own.rawMessage).toContain('ResourceQuota "paas-quota" is managed by the platform');
    const extra = await refusedInstall("quota2", "quota", { name: "more-quota" });
    expect(extra.code).toBe(Code.PermissionDenied);
    expect(await absent(() => core.readNamespacedResourceQuota({ namespace: ns, name: "more-quota" }))).toBe(true);
    expect((await core.readNamespacedResourceQuota({ namespace: ns, name: "paas-quota" })).spec).toEqual(quotaBefore);
  });

  it("privileged, hostNetwork, hostPath: refused before anything runs (a v3 hook pod by Pod Security itself)", async () => {
    const dep = await refusedInstall("root", "privileged");
    expect(dep.code).toBe(Code.FailedPrecondition);
    expect(dep.rawMessage).toContain(
      'Deployment "root-root": its pods violate the namespace\'s Pod Security level "restricted": hostNetwork=true (host namespaces); hostPID=true (host namespaces); hostPath volume "host"',
    );
    const hook = await refusedInstall("roothook", "privileged", { mode: "hookPod" });
    expect(hook.code).toBe(Code.FailedPrecondition);
    expect(hook.rawMessage).toMatch(
      major === 4
        ? /^The chart was refused before anything was applied: Pod "roothook-root" \(pre-install hook\): its pods violate/
        : new RegExp(
            `^The install of release roothook creates a pod that violates the Pod Security level "restricted" of namespace ${ns}$`,
          ),
    );
    const pods = await core.listNamespacedPod({ namespace: ns });
    expect(pods.items.map((p) => p.metadata?.name).filter((n) => n?.startsWith("root"))).toEqual([]);
  });

  it("a chart's NetworkPolicy is dropped (tenants cannot open the namespace); the rest installs", async () => {
    const res = await paas.releases.installRelease({
      namespace: ns,
      name: "net",
      chart: charts["networkpolicy"]!,
      version: "0.1.0",
    });
    expect(res.release?.status).toBe(ReleaseStatus.DEPLOYED);
    const policies = await networking.listNamespacedNetworkPolicy({ namespace: ns });
    expect(policies.items.map((p) => p.metadata?.name)).toEqual(["paas-default-deny"]);
    expect((await core.readNamespacedConfigMap({ namespace: ns, name: "net-innocent" })).data).toEqual({ k: "v" });
    expect(server.logs.some((l) => Array.isArray(l.dropped) && l.dropped.includes("NetworkPolicy/net-allow-all"))).toBe(
      true,
    );
    await paas.releases.uninstallRelease({ namespace: ns, name: "net" });
  });

  it("nothing was left anywhere: no ClusterRoleBinding, nothing in kube-system, no pending release", async () => {
    const crbs = await rbac.listClusterRoleBinding();
    expect(crbs.items.map((b) => b.metadata?.name).filter((n) => n?.includes(ns))).toEqual([]);
    const sys = await core.listNamespacedSecret({ namespace: "kube-system", labelSelector: "owner=helm" });
    expect(sys.items).toEqual([]);
    expect(await helmRecordsAll(ns)).toEqual([]);
  });
});

async function helmRecordsAll(namespace: string): Promise<string[]> {
  const list = await core.listNamespacedSecret({ namespace, labelSelector: "owner=helm" });
  return list.items.map((s) => `${s.metadata?.labels?.name}:${s.metadata?.labels?.status}`);
}
