/**
 * The tenant boundary on the real API server (RBAC, Pod Security Admission, quota), tested
 * by impersonating a namespace's deployer ServiceAccount: what helm may and may not do
 * when it runs as the tenant. Namespaces are provisioned by the kube adapter's
 * ensureNamespace (as CreateNamespace does), with the tenant ClusterRoles of k8s/rbac.yaml.
 */
import { randomBytes } from "node:crypto";
import * as k8s from "@kubernetes/client-node";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKubeClient } from "../../../src/kube/kube-client.ts";
import { impersonating } from "../../../src/kube/api/impersonation.ts";
import { createTenantAccess } from "../../../src/kube/tenancy/kube-tenant-access.ts";
import { DEFAULT_MANAGED_LABEL } from "../../../src/kube/kube-client.ts";
import type { KubeClient } from "../../../src/kube/kube-types.ts";
import { ensureTenantRoles } from "../../support/tenant-roles.ts";

const RUN = randomBytes(3).toString("hex");
const A = `paas-ws-rbac-${RUN}-a`;
const B = `paas-ws-rbac-${RUN}-b`;
const QUOTA = { cpu: "2", memory: "4Gi", storage: "10Gi" };

let admin: k8s.KubeConfig;
let kube: KubeClient;
let asDeployer: k8s.KubernetesObjectApi;
let deployerKc: k8s.KubeConfig;

beforeAll(async () => {
  if (!process.env.KUBECONFIG)
    throw new Error("KUBECONFIG is not set: run `npm run testbed:up` and `set -a; source .testbed/env; set +a`");
  await ensureTenantRoles();
  admin = new k8s.KubeConfig();
  admin.loadFromDefault();
  kube = createKubeClient({ kubeConfig: admin, logger: pino({ level: "silent" }) });
  await kube.ensureNamespace(A, QUOTA);
  await kube.ensureNamespace(B, QUOTA);
  deployerKc = impersonating(admin, `system:serviceaccount:${A}:paas-deployer`);
  asDeployer = k8s.KubernetesObjectApi.makeApiClient(deployerKc);
});

afterAll(async () => {
  const core = admin?.makeApiClient(k8s.CoreV1Api);
  for (const name of [A, B]) await core?.deleteNamespace({ name }).catch(() => undefined);
});

type Obj = k8s.KubernetesObject & Record<string, unknown>;

/** refused runs fn and returns the API server's answer (HTTP status and message); it must fail. */
async function refused(fn: () => Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof k8s.ApiException) {
      const body = typeof err.body === "string" ? err.body : JSON.stringify(err.body);
      let message = body;
      try {
        message = (JSON.parse(body) as { message?: string }).message ?? body;
      } catch {
        // not JSON
      }
      return { code: err.code, message };
    }
    throw err;
  }
  throw new Error("the request was allowed");
}

const cm = (namespace: string, name = `probe-${RUN}`): Obj => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name, namespace },
  data: { k: "v" },
});
const apply = (o: Obj) => asDeployer.patch(o, undefined, undefined, "helm", true, k8s.PatchStrategy.ServerSideApply);

describe("the deployer identity helm runs as", () => {
  it("carries the ServiceAccount's groups without asking for them (no impersonation of groups needed)", async () => {
    const authn = deployerKc.makeApiClient(k8s.AuthenticationV1Api);
    const review = await authn.createSelfSubjectReview({
      body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
    });
    expect(review.status?.userInfo?.username).toBe(`system:serviceaccount:${A}:paas-deployer`);
    expect(review.status?.userInfo?.groups?.sort()).toEqual([
      "system:authenticated",
      "system:serviceaccounts",
      `system:serviceaccounts:${A}`,
    ]);
  });

  it("cannot change its own Namespace, quota, LimitRange or NetworkPolicy", async () => {
    const ns: Obj = {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: A, labels: { "pod-security.kubernetes.io/enforce": "privileged" } },
    };
    const quota: Obj = {
      apiVersion: "v1",
      kind: "ResourceQuota",
      metadata: { name: "paas-quota", namespace: A },
      spec: { hard: { "limits.cpu": "1000" } },
    };
    const extraQuota: Obj = { ...quota, metadata: { name: "more", namespace: A } };
    const limits: Obj = {
      apiVersion: "v1",
      kind: "LimitRange",
      metadata: { name: "paas-limits", namespace: A },
      spec: { limits: [] },
    };
    const allowAll: Obj = {
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "allow-all", namespace: A },
      spec: { podSelector: {}, ingress: [{}], egress: [{}] },
    };
    const deny: Obj = {
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "paas-default-deny", namespace: A },
    };
    const attempts: Array<[string, () => Promise<unknown>]> = [
      ["relabel the namespace", () => apply(ns)],
      ["delete the namespace", () => asDeployer.delete(ns)],
      ["raise the quota", () => apply(quota)],
      ["delete the quota", () => asDeployer.delete(quota)],
      ["add a quota", () => asDeployer.create(extraQuota)],
      ["change the LimitRange", () => apply(limits)],
      ["delete the LimitRange", () => asDeployer.delete(limits)],
      ["add an allow-all NetworkPolicy", () => asDeployer.create(allowAll)],
      ["delete the default deny", () => asDeployer.delete(deny)],
    ];
    for (const [what, fn] of attempts) {
      const r = await refused(fn);
      expect(r.code, `${what}: ${r.message}`).toBe(403);
      expect(r.message, what).toContain(`User "system:serviceaccount:${A}:paas-deployer" cannot`);
    }
  });

  it("cannot reach anything cluster-scoped or in another namespace, nor read Secrets there", async () => {
    const crb: Obj = {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: `pwn-${RUN}` },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
      subjects: [{ kind: "ServiceAccount", name: "default", namespace: A }],
    };
    const crd: Obj = {
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: `things${RUN}.hostile.example.com` },
      spec: {
        group: "hostile.example.com",
        names: { kind: "Thing", plural: `things${RUN}` },
        scope: "Namespaced",
        versions: [],
      },
    };
    const core = deployerKc.makeApiClient(k8s.CoreV1Api);
    const attempts: Array<[string, () => Promise<unknown>]> = [
      ["ClusterRoleBinding", () => asDeployer.create(crb)],
      ["CustomResourceDefinition", () => asDeployer.create(crd)],
      [
        "Namespace",
        () => asDeployer.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: `paas-ws-pwn-${RUN}` } }),
      ],
      ["ConfigMap in kube-system", () => asDeployer.create(cm("kube-system"))],
      ["ConfigMap in another tenant's namespace", () => asDeployer.create(cm(B))],
      ["Secrets of another tenant (what lookup would read)", () => core.listNamespacedSecret({ namespace: B })],
      ["Secrets of kube-system", () => core.readNamespacedSecret({ namespace: "kube-system", name: "anything" })],
      ["nodes", () => core.listNode()],
    ];
    for (const [what, fn] of attempts) {
      const r = await refused(fn);
      expect(r.code, `${what}: ${r.message}`).toBe(403);
    }
  });

  it("cannot grant more than it holds (RBAC escalation prevention), even inside its namespace", async () => {
    const bind = (role: string): Obj => ({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: `to-${role}`, namespace: A },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
      subjects: [{ kind: "ServiceAccount", name: "default", namespace: A }],
    });
    for (const role of ["cluster-admin", "admin", "edit"]) {
      const r = await refused(() => asDeployer.create(bind(role)));
      expect(r.code, r.message).toBe(403);
      expect(r.message).toContain("is attempting to grant RBAC permissions not currently held");
    }
    const wildcard: Obj = {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "all", namespace: A },
      rules: [{ apiGroups: ["*"], resources: ["*"], verbs: ["*"] }],
    };
    expect((await refused(() => asDeployer.create(wildcard))).code).toBe(403);
    // What an app's own Role typically asks for is fine.
    const appRole: Obj = {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "app", namespace: A },
      rules: [
        { apiGroups: [""], resources: ["pods", "configmaps", "endpoints"], verbs: ["get", "list", "watch"] },
        { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update"] },
        { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] },
      ],
    };
    await asDeployer.create(appRole);
    await asDeployer.delete(appRole);
  });

  it("deploys what ordinary charts contain, within quota and Pod Security", async () => {
    const labels = { app: "web" };
    const podSpec = {
      securityContext: { runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: "RuntimeDefault" } },
      containers: [
        {
          name: "c",
          image: "busybox",
          securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
        },
      ],
    };
    const objects: Obj[] = [
      cm(A, "web-config"),
      { apiVersion: "v1", kind: "Secret", metadata: { name: "web-secret", namespace: A }, stringData: { k: "v" } },
      { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "web", namespace: A } },
      {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "web", namespace: A },
        spec: { selector: labels, ports: [{ port: 80 }] },
      },
      {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "web", namespace: A },
        spec: { selector: { matchLabels: labels }, template: { metadata: { labels }, spec: podSpec } },
      },
      {
        apiVersion: "batch/v1",
        kind: "Job",
        metadata: { name: "migrate", namespace: A },
        spec: { template: { spec: { ...podSpec, restartPolicy: "Never" } } },
      },
      {
        apiVersion: "batch/v1",
        kind: "CronJob",
        metadata: { name: "nightly", namespace: A },
        spec: {
          schedule: "0 3 * * *",
          jobTemplate: { spec: { template: { spec: { ...podSpec, restartPolicy: "Never" } } } },
        },
      },
      {
        apiVersion: "policy/v1",
        kind: "PodDisruptionBudget",
        metadata: { name: "web", namespace: A },
        spec: { maxUnavailable: 1, selector: { matchLabels: labels } },
      },
      {
        apiVersion: "autoscaling/v2",
        kind: "HorizontalPodAutoscaler",
        metadata: { name: "web", namespace: A },
        spec: {
          scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: "web" },
          minReplicas: 1,
          maxReplicas: 2,
        },
      },
      {
        apiVersion: "networking.k8s.io/v1",
        kind: "Ingress",
        metadata: { name: "web", namespace: A },
        spec: {
          rules: [
            {
              host: "web.example.com",
              http: {
                paths: [{ path: "/", pathType: "Prefix", backend: { service: { name: "web", port: { number: 80 } } } }],
              },
            },
          ],
        },
      },
    ];
    for (const o of objects) await apply(o);
    // Helm's own storage, and reading its release's pods.
    const core = deployerKc.makeApiClient(k8s.CoreV1Api);
    await core.listNamespacedSecret({ namespace: A, labelSelector: "owner=helm" });
    await core.listNamespacedPod({ namespace: A });
    // Quota: no LoadBalancer or NodePort Services.
    const lb = await refused(() =>
      asDeployer.create({
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "lb", namespace: A },
        spec: { type: "LoadBalancer", selector: labels, ports: [{ port: 80 }] },
      }),
    );
    expect(lb.code).toBe(403);
    expect(lb.message).toContain("exceeded quota: paas-quota, requested: services.loadbalancers=1");
    // No DaemonSets for tenants.
    const ds = await refused(() =>
      asDeployer.create({
        apiVersion: "apps/v1",
        kind: "DaemonSet",
        metadata: { name: "everywhere", namespace: A },
        spec: { selector: { matchLabels: labels }, template: { metadata: { labels }, spec: podSpec } },
      }),
    );
    expect(ds.code).toBe(403);
    for (const o of [...objects].reverse())
      await asDeployer.delete(o, undefined, undefined, undefined, undefined, "Background");
  });

  it("runs no privileged, hostNetwork or hostPath pod: Pod Security Admission (restricted) refuses it", async () => {
    const pod: Obj = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "root", namespace: A },
      spec: {
        hostNetwork: true,
        containers: [{ name: "c", image: "busybox", securityContext: { privileged: true } }],
        volumes: [{ name: "h", hostPath: { path: "/" } }],
      },
    };
    const r = await refused(() => asDeployer.create(pod));
    expect(r.code).toBe(403);
    expect(r.message).toMatch(
      /violates PodSecurity "restricted:v1\.\d+": host namespaces \(hostNetwork=true\), privileged/,
    );
  });
});

describe("namespace provisioning", () => {
  it("a namespace that is not fully provisioned refuses helm writes until CreateNamespace repairs it", async () => {
    const core = admin.makeApiClient(k8s.CoreV1Api);
    const rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
    const networking = admin.makeApiClient(k8s.NetworkingV1Api);
    // Break it the way a failed CreateNamespace would leave it: no deployer binding, no policy, not ready.
    await rbac.deleteNamespacedRoleBinding({ namespace: B, name: "paas-deployer" });
    await networking.deleteNamespacedNetworkPolicy({ namespace: B, name: "paas-default-deny" });
    await core.patchNamespace(
      { name: B, body: [{ op: "remove", path: "/metadata/labels/paas.io~1ready" }] },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.JsonPatch),
    );
    const tenant = createTenantAccess({ kubeConfig: admin, managedLabel: DEFAULT_MANAGED_LABEL });
    await expect(tenant.prepareWrite(B)).rejects.toMatchObject({
      kind: "failed_precondition",
      message: `namespace ${B} is not fully provisioned; call CreateNamespace again`,
    });
    expect((await kube.getNamespace(B)).ready).toBe(false);

    const again = await kube.ensureNamespace(B, QUOTA);
    expect(again).toMatchObject({ created: false, namespace: { ready: true, podSecurity: "restricted" } });
    await rbac.readNamespacedRoleBinding({ namespace: B, name: "paas-deployer" });
    await networking.readNamespacedNetworkPolicy({ namespace: B, name: "paas-default-deny" });
    expect((await tenant.prepareWrite(B)).namespace).toBe(B);
    // Right after provisioning the deployer's rights are in force (ensureNamespace waited for them).
    const asB = k8s.KubernetesObjectApi.makeApiClient(impersonating(admin, `system:serviceaccount:${B}:paas-deployer`));
    await asB.create(cm(B, "first-write"));
  });

  it("is labelled for Pod Security, pinned to the cluster's minor, and holds the object-count quota", async () => {
    const core = admin.makeApiClient(k8s.CoreV1Api);
    const labels = (await core.readNamespace({ name: A })).metadata?.labels ?? {};
    const version = (await admin.makeApiClient(k8s.VersionApi).getCode()) as { major: string; minor: string };
    expect(labels).toMatchObject({
      "pod-security.kubernetes.io/enforce": "restricted",
      "pod-security.kubernetes.io/enforce-version": `v${version.major}.${version.minor.replace(/\D.*$/, "")}`,
      "pod-security.kubernetes.io/warn": "restricted",
      "paas.io/ready": "true",
    });
    const quota = await core.readNamespacedResourceQuota({ namespace: A, name: "paas-quota" });
    expect(quota.spec?.hard).toMatchObject({
      "services.nodeports": "0",
      "services.loadbalancers": "0",
      "count/secrets": "100",
      "count/configmaps": "100",
      persistentvolumeclaims: "10",
    });
  });
});
