/**
 * The second ValidatingAdmissionPolicy of k8s/admission-policy.yaml (paas-tenant-deployer-guard)
 * against the testbed's real kube-apiserver: a tenant namespace is provisioned by the
 * operator's own code, the policy is installed (renamed, and narrowed to this run's namespace
 * so that it cannot touch other tests on the shared cluster), and then, impersonating the
 * namespace's paas-deployer ServiceAccount, every forbidden action is tried: each must be
 * refused by the policy (its message, not RBAC's) and leave the object unchanged. Actions a
 * chart needs (a Deployment, its own ServiceAccount, Role and RoleBinding, ordinary Secrets)
 * must still work, and so must the operator re-applying the objects the policy protects.
 *
 * Needs the testbed's environment (`set -a; source .testbed/env; set +a`).
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  RbacAuthorizationV1Api,
  type KubernetesObject,
  type V1RoleBinding,
  type V1ServiceAccount,
} from "@kubernetes/client-node";
import { loadAll, YAML11_SCHEMA } from "js-yaml";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKubeClient } from "../../../src/kube/kube-client.ts";
import { impersonating } from "../../../src/kube/api/impersonation.ts";
import {
  DEPLOYER_BINDING,
  DEPLOYER_SERVICE_ACCOUNT,
  deployerUser,
  OPERATOR_BINDING,
} from "../../../src/kube/tenancy/tenant-objects.ts";
import { ensureTenantRoles } from "../../support/tenant-roles.ts";

type Doc = KubernetesObject & { kind: string; metadata: { name: string }; spec: Record<string, any> };

const FILE = fileURLToPath(new URL("../../../k8s/admission-policy.yaml", import.meta.url));
const DOCS = (loadAll(readFileSync(FILE, "utf8"), { schema: YAML11_SCHEMA }) as Doc[]).filter(Boolean);
const POLICY_NAME = "paas-tenant-deployer-guard";
const policy = DOCS.find((d) => d.kind === "ValidatingAdmissionPolicy" && d.metadata.name === POLICY_NAME)!;
const binding = DOCS.find((d) => d.kind === "ValidatingAdmissionPolicyBinding" && d.spec.policyName === POLICY_NAME)!;
const DEPLOYMENT = (
  loadAll(readFileSync(fileURLToPath(new URL("../../../k8s/deployment.yaml", import.meta.url)), "utf8"), {
    schema: YAML11_SCHEMA,
  }) as any[]
).find((d) => d?.kind === "Deployment");
const PREFIX: string =
  DEPLOYMENT?.spec.template.spec.containers
    .flatMap((c: any) => c.env ?? [])
    .find((e: any) => e.name === "NAMESPACE_PREFIX")?.value ?? "paas-ws-";

const RUN = randomBytes(3).toString("hex");
const TENANT = `${PREFIX}dap-${RUN}`;
const DEPLOYER = deployerUser(TENANT);
const TEST_POLICY = `${POLICY_NAME}-${RUN}`;
const USER_PREFIX = `"system:serviceaccount:${PREFIX}"`;

let kc: KubeConfig;
let admin: KubernetesObjectApi;
let adminRbac: RbacAuthorizationV1Api;
let adminCore: CoreV1Api;
let rbac: RbacAuthorizationV1Api; // as the deployer
let core: CoreV1Api; // as the deployer
let apps: AppsV1Api; // as the deployer
const installed: KubernetesObject[] = [];

/** refusal runs a request that must be refused and returns its status and message. */
async function refusal(fn: () => Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await fn();
  } catch (err) {
    if (!(err instanceof ApiException)) throw err;
    const body = typeof err.body === "string" ? err.body : JSON.stringify(err.body);
    let message = body;
    try {
      message = (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      // not JSON
    }
    return { code: err.code, message };
  }
  throw new Error("the request was allowed");
}

/** byPolicy asserts that a refusal came from this policy (not RBAC) and carries `text`. */
function byPolicy(r: { code: number; message: string }, text: string): void {
  expect(r.code, r.message).toBe(403);
  expect(r.message).toContain(`ValidatingAdmissionPolicy '${TEST_POLICY}'`);
  expect(r.message).toContain(text);
}

async function bindingState(name: string): Promise<V1RoleBinding> {
  return adminRbac.readNamespacedRoleBinding({ name, namespace: TENANT });
}

async function accountState(): Promise<V1ServiceAccount> {
  return adminCore.readNamespacedServiceAccount({ name: DEPLOYER_SERVICE_ACCOUNT, namespace: TENANT });
}

beforeAll(async () => {
  if (!process.env.KUBECONFIG) throw new Error("KUBECONFIG is not set: source .testbed/env (npm run testbed:up first)");
  kc = new KubeConfig();
  kc.loadFromDefault();
  admin = KubernetesObjectApi.makeApiClient(kc);
  adminRbac = kc.makeApiClient(RbacAuthorizationV1Api);
  adminCore = kc.makeApiClient(CoreV1Api);
  const asDeployer = impersonating(kc, DEPLOYER);
  rbac = asDeployer.makeApiClient(RbacAuthorizationV1Api);
  core = asDeployer.makeApiClient(CoreV1Api);
  apps = asDeployer.makeApiClient(AppsV1Api);

  // The tenant namespace, exactly as CreateNamespace provisions it.
  await ensureTenantRoles();
  const kube = createKubeClient({ kubeConfig: kc, logger: pino({ level: "silent" }) });
  await kube.ensureNamespace(TENANT, { cpu: "2", memory: "2Gi", storage: "1Gi" });

  // The policy, renamed for this run and matching this run's deployer only.
  const p = structuredClone(policy);
  p.metadata = { ...p.metadata, name: TEST_POLICY };
  const condition = p.spec.matchConditions[0];
  condition.expression = condition.expression.replace(USER_PREFIX, `"system:serviceaccount:${TENANT}:"`);
  const b = structuredClone(binding);
  b.metadata = { ...b.metadata, name: TEST_POLICY };
  b.spec.policyName = TEST_POLICY;
  for (const obj of [p, b]) {
    await admin.create(obj);
    installed.push(obj);
  }
  // Admission policies reach the API server's cache asynchronously: wait until a dry run is refused.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await refusal(() =>
      rbac.deleteNamespacedRoleBinding({ name: DEPLOYER_BINDING, namespace: TENANT, dryRun: "All" }),
    ).catch((e: Error) => ({
      code: 0,
      message: e.message,
    }));
    if (r.code === 403 && r.message.includes(TEST_POLICY)) break;
    if (Date.now() > deadline) throw new Error(`policy not in force after 30 s: ${r.message}`);
    await new Promise((res) => setTimeout(res, 250));
  }
});

afterAll(async () => {
  for (const obj of installed.reverse()) await admin?.delete(obj).catch(() => undefined);
  await adminCore?.deleteNamespace({ name: TENANT }).catch(() => undefined);
});

describe("k8s/admission-policy.yaml: the tenant deployer policy", () => {
  it("is bound with Deny, matches deployers of NAMESPACE_PREFIX namespaces and names the objects CreateNamespace makes", async () => {
    expect(binding.spec.validationActions).toEqual(["Deny"]);
    expect(policy.spec.failurePolicy).toBe("Fail");
    const condition = policy.spec.matchConditions.map((c: { expression: string }) => c.expression).join(" ");
    expect(condition).toContain(`startsWith(${USER_PREFIX})`);
    expect(condition).toContain(`endsWith(":${DEPLOYER_SERVICE_ACCOUNT}")`);
    const rules = policy.spec.matchConstraints.resourceRules as Array<{
      resources: string[];
      resourceNames?: string[];
      operations: string[];
    }>;
    // No resourceNames: a deletecollection's items carry no request name (see the next tests).
    expect(rules.every((r) => r.resourceNames === undefined)).toBe(true);
    expect(rules.find((r) => r.resources.includes("serviceaccounts/token"))?.operations).toEqual(["CREATE"]);
    const validations = (policy.spec.validations as Array<{ expression: string }>).map((v) => v.expression).join("\n");
    expect(validations).toContain(`!(variables.name in ["${DEPLOYER_BINDING}", "${OPERATOR_BINDING}"])`);
    expect(validations).toContain(`variables.name != "${DEPLOYER_SERVICE_ACCOUNT}"`);
    // Its CEL type-checks without warnings on the real API server.
    type Vap = KubernetesObject & {
      metadata: { generation?: number };
      status?: { observedGeneration?: number; typeChecking?: { expressionWarnings?: unknown[] } };
    };
    const vap = await admin.read<Vap>({
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicy",
      metadata: { name: TEST_POLICY },
    });
    expect(vap.status?.observedGeneration).toBe(vap.metadata.generation);
    expect(vap.status?.typeChecking?.expressionWarnings ?? []).toEqual([]);
  });

  it("refuses deleting or rewriting the RoleBindings paas-deployer and paas-operator; they stay unchanged", async () => {
    for (const name of [DEPLOYER_BINDING, OPERATOR_BINDING]) {
      const before = await bindingState(name);
      byPolicy(
        await refusal(() => rbac.deleteNamespacedRoleBinding({ name, namespace: TENANT })),
        `RoleBinding ${name} belongs to the platform`,
      );
      // Rebinding to someone else: the namespace's default account (every pod) and another namespace's.
      const rewritten = {
        ...before,
        subjects: [
          ...(before.subjects ?? []),
          { kind: "ServiceAccount", name: "default", namespace: TENANT },
          { kind: "ServiceAccount", name: "default", namespace: "default" },
        ],
      };
      byPolicy(
        await refusal(() => rbac.replaceNamespacedRoleBinding({ name, namespace: TENANT, body: rewritten })),
        "may not update it",
      );
      const after = await bindingState(name);
      expect(after.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
      expect(after.subjects).toEqual(before.subjects);
    }
  });

  it("refuses a collection delete of RoleBindings item by item (with RBAC granting deletecollection)", async () => {
    // paas-tenant-deployer has no deletecollection; grant it here so that only the policy can refuse.
    await grant("probe-deletecollection", [
      { apiGroups: ["rbac.authorization.k8s.io"], resources: ["rolebindings"], verbs: ["deletecollection", "list"] },
    ]);
    const before = await Promise.all([DEPLOYER_BINDING, OPERATOR_BINDING].map(bindingState));
    await eventuallyRefused(
      () =>
        rbac.deleteCollectionNamespacedRoleBinding({
          namespace: TENANT,
          labelSelector: "app.kubernetes.io/managed-by=paas-operator",
        }),
      "belongs to the platform",
    );
    const after = await Promise.all([DEPLOYER_BINDING, OPERATOR_BINDING].map(bindingState));
    expect(after.map((b) => b.metadata?.uid)).toEqual(before.map((b) => b.metadata?.uid));
  });

  it("refuses deleting or changing the ServiceAccount paas-deployer; it stays unchanged", async () => {
    const before = await accountState();
    byPolicy(
      await refusal(() => core.deleteNamespacedServiceAccount({ name: DEPLOYER_SERVICE_ACCOUNT, namespace: TENANT })),
      "is the namespace's deployer identity",
    );
    byPolicy(
      await refusal(() =>
        core.replaceNamespacedServiceAccount({
          name: DEPLOYER_SERVICE_ACCOUNT,
          namespace: TENANT,
          body: { ...before, automountServiceAccountToken: true },
        }),
      ),
      "may not update itself",
    );
    const after = await accountState();
    expect(after.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
    expect(after.automountServiceAccountToken).toBe(false);
  });

  it("refuses ServiceAccount tokens: TokenRequests (RBAC refuses them too) and legacy token Secrets", async () => {
    const tokenRequest = (name: string) =>
      core.createNamespacedServiceAccountToken({
        name,
        namespace: TENANT,
        body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 600 } },
      });
    // Without a grant, RBAC refuses first (not the policy).
    const rbacOnly = await refusal(() => tokenRequest(DEPLOYER_SERVICE_ACCOUNT));
    expect(rbacOnly.code).toBe(403);
    expect(rbacOnly.message).toContain('cannot create resource "serviceaccounts/token"');
    // With a grant, the policy still refuses, for the deployer's account and for a chart's.
    await core.createNamespacedServiceAccount({ namespace: TENANT, body: { metadata: { name: "app" } } });
    await grant("probe-token", [{ apiGroups: [""], resources: ["serviceaccounts/token"], verbs: ["create"] }]);
    for (const name of [DEPLOYER_SERVICE_ACCOUNT, "app"])
      await eventuallyRefused(() => tokenRequest(name), "may not create ServiceAccount tokens");
    // Secrets are granted (charts hold them), so this is the path the policy closes.
    for (const account of [DEPLOYER_SERVICE_ACCOUNT, "app"]) {
      const name = `token-${account}`;
      const r = await refusal(() =>
        core.createNamespacedSecret({
          namespace: TENANT,
          body: {
            metadata: { name, annotations: { "kubernetes.io/service-account.name": account } },
            type: "kubernetes.io/service-account-token",
          },
        }),
      );
      byPolicy(r, `Secret ${name} is of type kubernetes.io/service-account-token`);
      const listed = await adminCore.listNamespacedSecret({
        namespace: TENANT,
        fieldSelector: `metadata.name=${name}`,
      });
      expect(listed.items).toEqual([]);
    }
  });

  it("still lets the deployer do what charts do: Deployment, ServiceAccount, Role, RoleBinding, Secrets", async () => {
    await apps.createNamespacedDeployment({
      namespace: TENANT,
      body: {
        metadata: { name: "web" },
        spec: {
          replicas: 0,
          selector: { matchLabels: { app: "web" } },
          template: { metadata: { labels: { app: "web" } }, spec: { containers: [{ name: "web", image: "busybox" }] } },
        },
      },
    });
    await core.createNamespacedServiceAccount({ namespace: TENANT, body: { metadata: { name: "web" } } });
    await rbac.createNamespacedRole({
      namespace: TENANT,
      body: {
        metadata: { name: "web-reader" },
        rules: [{ apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list"] }],
      },
    });
    const rb = await rbac.createNamespacedRoleBinding({
      namespace: TENANT,
      body: {
        metadata: { name: "web-reader" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "web-reader" },
        subjects: [{ kind: "ServiceAccount", name: "web", namespace: TENANT }],
      },
    });
    await rbac.replaceNamespacedRoleBinding({
      name: "web-reader",
      namespace: TENANT,
      body: { ...rb, metadata: { ...rb.metadata, labels: { tier: "web" } } },
    });
    const secret = await core.createNamespacedSecret({
      namespace: TENANT,
      body: { metadata: { name: "web-config" }, stringData: { password: "x" } },
    });
    expect(secret.type).toBe("Opaque");
    await core.replaceNamespacedSecret({
      name: "web-config",
      namespace: TENANT,
      body: { ...secret, stringData: { password: "y" } },
    });
    await rbac.deleteNamespacedRoleBinding({ name: "web-reader", namespace: TENANT });
    await core.deleteNamespacedServiceAccount({ name: "web", namespace: TENANT });
    expect((await apps.readNamespacedDeployment({ name: "web", namespace: TENANT })).metadata?.name).toBe("web");
  });

  it("does not stand in the operator's way: CreateNamespace re-applies the protected objects", async () => {
    const kube = createKubeClient({ kubeConfig: kc, logger: pino({ level: "silent" }) });
    const again = await kube.ensureNamespace(TENANT, { cpu: "2", memory: "2Gi", storage: "1Gi" });
    expect(again).toMatchObject({ created: false, namespace: { ready: true } });
    expect((await bindingState(DEPLOYER_BINDING)).subjects).toEqual([
      { kind: "ServiceAccount", name: DEPLOYER_SERVICE_ACCOUNT, namespace: TENANT },
    ]);
  });
});

/** grant gives the deployer extra rights in its namespace (admin-made Role and RoleBinding). */
async function grant(
  name: string,
  rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>,
): Promise<void> {
  await adminRbac.createNamespacedRole({ namespace: TENANT, body: { metadata: { name }, rules } });
  await adminRbac.createNamespacedRoleBinding({
    namespace: TENANT,
    body: {
      metadata: { name },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
      subjects: [{ kind: "ServiceAccount", name: DEPLOYER_SERVICE_ACCOUNT, namespace: TENANT }],
    },
  });
}

/** eventuallyRefused retries while RBAC still refuses (a new RoleBinding takes a moment), then wants the policy's refusal. */
async function eventuallyRefused(fn: () => Promise<unknown>, text: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const r = await refusal(fn);
    if (r.message.includes(TEST_POLICY) || Date.now() > deadline) return byPolicy(r, text);
    await new Promise((res) => setTimeout(res, 200));
  }
}
