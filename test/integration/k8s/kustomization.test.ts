/**
 * The deployment manifests in k8s/, checked against the real testbed cluster (e2e project):
 *
 *  1. static: every file parses, means the same to YAML 1.1 (kubectl) and YAML 1.2 tools,
 *     is listed in kustomization.yaml, and `kubectl kustomize` builds;
 *  2. server-side dry run: every object is accepted by the API server (schema, defaulting,
 *     validation, admission) — the operator's namespace is created for real first;
 *  3. properties the operator relies on: shutdown grace above the helm timeout, gRPC
 *     liveness, /readyz readiness, non-root, the Secret wired to API_KEY_FILE, RBAC without
 *     wildcards or escalation, the admission policy in sync with the Deployment;
 *  4. installed for real (under unique names), as the operator's ServiceAccount (with a real
 *     token of it): the operator's own Kubernetes code provisions a tenant namespace, helm
 *     runs there as the namespace's deployer (the operator impersonating it) through the
 *     service's own helm adapter, and everything beyond that is refused: writes outside
 *     tenant namespaces, cluster-scoped objects, the quota, Secrets outside tenant
 *     namespaces, impersonating anyone else, binding any other role.
 *
 * Needs the testbed's environment (`set -a; source .testbed/env; set +a`): it fails, never
 * skips, when KUBECONFIG is unset.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  type KubernetesObject,
  type V1ClusterRole,
  type V1ClusterRoleBinding,
  type V1Container,
  type V1Deployment,
  type V1EnvVar,
  type V1PolicyRule,
  type V1Role,
  type V1RoleBinding,
  type V1Secret,
  type V1Service,
  type V1ServiceAccount,
} from "@kubernetes/client-node";
import { loadAll, YAML11_SCHEMA } from "js-yaml";
import pino from "pino";
import { LeaseManager } from "../../../src/kube/leases/leases.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHelmCli, type HelmCli } from "../../../src/helm/cli.ts";
import { createKubeClient, DEFAULT_MANAGED_LABEL } from "../../../src/kube/kube-client.ts";
import { createTenantAccess } from "../../../src/kube/tenancy/kube-tenant-access.ts";
import { impersonating } from "../../../src/kube/api/impersonation.ts";

const run = promisify(execFile);

const REPO = fileURLToPath(new URL("../../..", import.meta.url));
const K8S_DIR = join(REPO, "k8s");

// ---------------------------------------------------------------- the manifests

// Parsed YAML: plain objects, read through the client's types once the kind is known.
type Manifest = KubernetesObject & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [key: string]: unknown;
};

interface Loaded {
  file: string;
  obj: Manifest;
}

const MANIFEST_FILES = readdirSync(K8S_DIR)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort();

function parseFile(file: string): { core: unknown[]; yaml11: unknown[] } {
  const text = readFileSync(join(K8S_DIR, file), "utf8");
  return {
    core: loadAll(text).filter((d) => d != null),
    // kubectl (sigs.k8s.io/yaml) reads YAML 1.1: yes/no/on/off are booleans, 0755 is octal.
    yaml11: loadAll(text, { schema: YAML11_SCHEMA }).filter((d) => d != null),
  };
}

const LOADED: Loaded[] = [];
let KUSTOMIZATION: { resources?: string[]; images?: Array<{ name: string; newTag?: string }> } | undefined;
for (const file of MANIFEST_FILES) {
  for (const doc of parseFile(file).yaml11) {
    const obj = doc as Manifest;
    if (obj.kind === "Kustomization") KUSTOMIZATION = obj as typeof KUSTOMIZATION;
    else LOADED.push({ file, obj });
  }
}

function all<T>(kind: string): T[] {
  return LOADED.filter((l) => l.obj.kind === kind).map((l) => l.obj as unknown as T);
}

function only<T>(kind: string): T {
  const found = all<T>(kind);
  if (found.length !== 1) throw new Error(`k8s/ should hold exactly one ${kind}, found ${found.length}`);
  return found[0]!;
}

const CLUSTER_SCOPED = new Set([
  "Namespace",
  "ClusterRole",
  "ClusterRoleBinding",
  "ValidatingAdmissionPolicy",
  "ValidatingAdmissionPolicyBinding",
]);

const deployment = only<V1Deployment>("Deployment");
const podSpec = deployment.spec!.template.spec!;
const container: V1Container = podSpec.containers.find((c) => c.name === "operator") ?? podSpec.containers[0]!;
const env = (name: string): string | undefined => container.env?.find((e: V1EnvVar) => e.name === name)?.value;
const OPERATOR_NS = only<Manifest>("Namespace").metadata.name;
const serviceAccount = only<V1ServiceAccount>("ServiceAccount");
const SA_NAME = serviceAccount.metadata!.name!;
const PREFIX = env("NAMESPACE_PREFIX") ?? "paas-ws-";

/** seconds parses a duration the way src/config.ts does: 300, 300s, 5m, 1h. */
function seconds(raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === "") return fallback;
  const m = /^(\d+)(s|m|h)?$/.exec(raw.trim());
  if (!m) throw new Error(`not a duration: ${raw}`);
  return Number(m[1]) * (m[2] === "h" ? 3600 : m[2] === "m" ? 60 : 1);
}

/** portNumber resolves a probe/Service port (number or container port name) to a number. */
function portNumber(port: number | string | undefined): number | undefined {
  if (typeof port === "number") return port;
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

/** allows: does any rule grant `verb` on group/resource (namespaced use)? Wildcards count. */
function allows(rules: V1PolicyRule[], verb: string, group: string, resource: string): boolean {
  return rules.some(
    (r) =>
      (r.verbs.includes(verb) || r.verbs.includes("*")) &&
      (r.apiGroups ?? []).some((g) => g === group || g === "*") &&
      (r.resources ?? []).some((res) => res === resource || res === "*") &&
      !(r.resourceNames && r.resourceNames.length > 0),
  );
}

// ---------------------------------------------------------------- the cluster

const SUFFIX = `${Date.now().toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36)}`;
const TEST_NS = `paas-system-${SUFFIX}`;
const TENANT = `${PREFIX}mt-${SUFFIX}`;
const TEST_SA_USER = `system:serviceaccount:${TEST_NS}:${SA_NAME}`;
const REAL_SA_USER = `system:serviceaccount:${OPERATOR_NS}:${SA_NAME}`;
/** The user-name prefix of the tenant deployers' policy (k8s/admission-policy.yaml, the second one). */
const DEPLOYERS = `"system:serviceaccount:${PREFIX}"`;
/** The operator's own policy; the deployers' one is tested in deployer-admission-policy.test.ts. */
const OPERATOR_POLICY = "paas-operator-tenant-scope";

/**
 * forTest rewrites an object so that this run cannot collide with the real deployment or
 * with another run: the operator namespace becomes TEST_NS, cluster-scoped names (and the
 * references to them) get SUFFIX, the admission policy matches the test ServiceAccount.
 */
function forTest(src: Manifest): Manifest {
  const obj = structuredClone(src) as Manifest & Record<string, any>;
  if (obj.kind === "Namespace") obj.metadata.name = TEST_NS;
  else if (CLUSTER_SCOPED.has(obj.kind)) obj.metadata.name = `${obj.metadata.name}-${SUFFIX}`;
  if (obj.metadata.namespace !== undefined) {
    if (obj.metadata.namespace !== OPERATOR_NS)
      throw new Error(`${obj.kind}/${obj.metadata.name} is in ${obj.metadata.namespace}, not ${OPERATOR_NS}`);
    obj.metadata.namespace = TEST_NS;
  }
  // The operator's bind/get rule names the (renamed) tenant ClusterRoles.
  if (obj.kind === "ClusterRole") {
    for (const rule of obj.rules ?? []) {
      if ((rule.resources ?? []).includes("clusterroles") && rule.resourceNames)
        rule.resourceNames = rule.resourceNames.map((n: string) => `${n}-${SUFFIX}`);
    }
  }
  if (obj.kind === "ClusterRoleBinding") {
    obj.roleRef.name = `${obj.roleRef.name}-${SUFFIX}`;
    for (const s of obj.subjects ?? []) if (s.namespace === OPERATOR_NS) s.namespace = TEST_NS;
  }
  if (obj.kind === "RoleBinding") {
    for (const s of obj.subjects ?? []) if (s.namespace === OPERATOR_NS) s.namespace = TEST_NS;
  }
  if (obj.kind === "ValidatingAdmissionPolicyBinding") obj.spec.policyName = `${obj.spec.policyName}-${SUFFIX}`;
  if (obj.kind === "ValidatingAdmissionPolicy") {
    for (const c of obj.spec.matchConditions ?? []) {
      if (c.expression.includes(REAL_SA_USER)) c.expression = c.expression.replaceAll(REAL_SA_USER, TEST_SA_USER);
      // The tenant deployers' policy: this run's tenant namespace only (the cluster is shared).
      else if (c.expression.includes(DEPLOYERS))
        c.expression = c.expression.replaceAll(DEPLOYERS, `"system:serviceaccount:${TENANT}:"`);
      else
        throw new Error(
          `matchCondition ${c.name} names neither ${REAL_SA_USER} nor the deployers of ${PREFIX}* namespaces`,
        );
    }
  }
  return obj;
}

function describeError(err: unknown): string {
  if (err instanceof ApiException) {
    const body = typeof err.body === "string" ? err.body : JSON.stringify(err.body);
    try {
      return `HTTP ${err.code}: ${(JSON.parse(body) as { message?: string }).message ?? body}`;
    } catch {
      return `HTTP ${err.code}: ${body}`;
    }
  }
  return err instanceof Error ? err.message : String(err);
}

function label(obj: KubernetesObject): string {
  return `${obj.kind}/${obj.metadata?.namespace ? `${obj.metadata.namespace}/` : ""}${obj.metadata?.name}`;
}

/** refused runs fn and returns the API error it must end with (status and message). */
async function refused(fn: () => Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof ApiException) return { code: err.code, message: describeError(err) };
    throw err;
  }
  throw new Error("the request was allowed");
}

async function eventually(what: string, ms: number, fn: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      return await fn();
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(`${what}: not within ${ms} ms: ${describeError(last)}`);
}

function requireEnv(name: string): string {
  const v = process.env[name];
  if (!v) {
    throw new Error(
      `${name} is not set: this e2e test needs the local testbed. Run \`npm run testbed:up\`, then ` +
        "`set -a; source .testbed/env; set +a` before `npx vitest run --project e2e test/integration/k8s/kustomization.test.ts`.",
    );
  }
  return v;
}

let kc: KubeConfig;
let admin: KubernetesObjectApi;
const created: Manifest[] = []; // real objects, deleted in afterAll (in reverse)
let helmHome: string | undefined;

beforeAll(() => {
  requireEnv("KUBECONFIG");
  kc = new KubeConfig();
  kc.loadFromDefault();
  admin = KubernetesObjectApi.makeApiClient(kc);
});

afterAll(async () => {
  if (helmHome) rmSync(helmHome, { recursive: true, force: true });
  if (!admin) return;
  const tenant = { apiVersion: "v1", kind: "Namespace", metadata: { name: TENANT } };
  for (const obj of [tenant, ...created.reverse()]) {
    await admin.delete(obj).catch((err: unknown) => {
      if (!(err instanceof ApiException && err.code === 404))
        console.warn(`cleanup of ${label(obj)} failed: ${describeError(err)}`);
    });
  }
});

// ---------------------------------------------------------------- 1. static

describe("k8s/ files", () => {
  it("parse, and mean the same under YAML 1.1 (kubectl) and YAML 1.2", () => {
    expect(MANIFEST_FILES.length).toBeGreaterThan(1);
    for (const file of MANIFEST_FILES) {
      const { core, yaml11 } = parseFile(file);
      expect(core.length, `${file} holds no document`).toBeGreaterThan(0);
      expect(yaml11, `${file}: a scalar reads differently in YAML 1.1 and 1.2 (quote it)`).toEqual(core);
    }
  });

  it("are all listed in kustomization.yaml, which lists nothing else", () => {
    expect(KUSTOMIZATION, "k8s/kustomization.yaml").toBeDefined();
    const listed = [...(KUSTOMIZATION!.resources ?? [])].sort();
    const files = MANIFEST_FILES.filter((f) => !/^kustomization\.ya?ml$/.test(f));
    expect(listed).toEqual(files);
    expect(KUSTOMIZATION!.images?.map((i) => `${i.name}:${i.newTag}`)).toContain(container.image);
  });

  it("build with `kubectl kustomize` into the same objects", async () => {
    const kubectl = requireEnv("KUBECTL");
    const { stdout } = await run(kubectl, ["kustomize", K8S_DIR], { maxBuffer: 16 * 1024 * 1024 });
    const built = (loadAll(stdout, { schema: YAML11_SCHEMA }) as Manifest[]).filter((d) => d != null);
    expect(built.map(label).sort()).toEqual(LOADED.map((l) => label(l.obj)).sort());
  });

  it("namespace every namespaced object in the operator's namespace and label everything", () => {
    for (const { file, obj } of LOADED) {
      expect(obj.apiVersion, `${file}: apiVersion`).toBeTruthy();
      expect(obj.metadata.name, `${file}: ${obj.kind} name`).toBeTruthy();
      if (CLUSTER_SCOPED.has(obj.kind))
        expect(obj.metadata.namespace, `${file}: ${label(obj)} is cluster-scoped`).toBeUndefined();
      else expect(obj.metadata.namespace, `${file}: ${label(obj)}`).toBe(OPERATOR_NS);
      expect(
        (obj.metadata as { labels?: Record<string, string> }).labels?.["app.kubernetes.io/name"],
        `${file}: ${label(obj)} labels`,
      ).toBe("paas-operator");
    }
  });
});

// ---------------------------------------------------------------- 2. server-side dry run

describe("server-side dry run", () => {
  beforeAll(async () => {
    // Namespaced objects can only be dry-run into a namespace that exists.
    const ns = forTest(only<Manifest>("Namespace"));
    await admin.create(ns).catch((err: unknown) => {
      throw new Error(`create of ${label(ns)} failed: ${describeError(err)}`);
    });
    created.push(ns);
  });

  for (const { file, obj } of LOADED.filter((l) => l.obj.kind !== "Namespace")) {
    it(`accepts ${label(obj)} (${file})`, async () => {
      const copy = forTest(obj);
      try {
        const answer = await admin.create(copy, undefined, "All");
        expect(answer.metadata?.name).toBe(copy.metadata.name);
      } catch (err) {
        throw new Error(`dry-run create of ${label(copy)} from k8s/${file} failed: ${describeError(err)}`, {
          cause: err,
        });
      }
    });
  }

  it("accepts the Deployment's pod under the namespace's Pod Security enforcement", async () => {
    // A Deployment is only warned about; a Pod is refused. Dry-run the pod itself, with
    // its ServiceAccount created for real (the ServiceAccount admission plugin needs it).
    const ns = only<Manifest>("Namespace") as Manifest & { metadata: { labels?: Record<string, string> } };
    expect(ns.metadata.labels?.["pod-security.kubernetes.io/enforce"]).toBe("restricted");
    const sa = forTest(serviceAccount as Manifest);
    await admin.create(sa);
    created.push(sa);
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "pss-check", namespace: TEST_NS, labels: deployment.spec!.template.metadata?.labels },
      spec: podSpec,
    };
    try {
      await admin.create(pod, undefined, "All");
    } catch (err) {
      throw new Error(`the operator pod violates the namespace's Pod Security level: ${describeError(err)}`, {
        cause: err,
      });
    }
  });
});

// ---------------------------------------------------------------- 3. properties

describe("Deployment", () => {
  it("gives SIGTERM more time than a helm operation may take", () => {
    const helmTimeout = seconds(env("HELM_TIMEOUT"), 300);
    const shutdownGrace = seconds(env("SHUTDOWN_GRACE"), helmTimeout + 30);
    const preStop = container.lifecycle?.preStop?.sleep?.seconds ?? 0;
    const grace = podSpec.terminationGracePeriodSeconds;
    expect(grace, "terminationGracePeriodSeconds").toBeTypeOf("number");
    expect(grace!, `terminationGracePeriodSeconds ${grace} vs HELM_TIMEOUT ${helmTimeout}s`).toBeGreaterThan(
      helmTimeout,
    );
    expect(
      shutdownGrace,
      "SHUTDOWN_GRACE must cover a helm operation (HELM_TIMEOUT) plus its SIGTERM margin",
    ).toBeGreaterThan(helmTimeout + 15);
    // The kubelet's clock includes the preStop hook; leave a few seconds to exit.
    expect(
      grace!,
      `terminationGracePeriodSeconds ${grace} vs preStop ${preStop}s + SHUTDOWN_GRACE ${shutdownGrace}s`,
    ).toBeGreaterThanOrEqual(preStop + shutdownGrace + 5);
  });

  it("probes liveness with gRPC health on 8000 and readiness on /readyz", () => {
    const live = container.livenessProbe;
    expect(live?.grpc, "livenessProbe.grpc").toBeDefined();
    expect(live!.grpc!.port).toBe(8000);
    expect(live!.grpc!.service ?? "", "gRPC health service checked").toBe("");
    const ready = container.readinessProbe;
    expect(ready?.httpGet?.path).toBe("/readyz");
    expect(portNumber(ready?.httpGet?.port as number | string)).toBe(8000);
    expect(container.ports?.some((p) => p.containerPort === 8000)).toBe(true);
    expect(env("PORT") ?? "8000").toBe("8000");
  });

  it("runs as non-root on a read-only root filesystem, with writable /tmp and HOME", () => {
    expect(podSpec.securityContext?.runAsNonRoot || container.securityContext?.runAsNonRoot, "runAsNonRoot").toBe(true);
    const uid = container.securityContext?.runAsUser ?? podSpec.securityContext?.runAsUser;
    expect(uid, "numeric non-root runAsUser").toBeGreaterThan(0);
    expect(container.securityContext?.readOnlyRootFilesystem).toBe(true);
    expect(container.securityContext?.allowPrivilegeEscalation).toBe(false);
    expect(container.securityContext?.capabilities?.drop).toContain("ALL");
    const emptyDirs = new Set((podSpec.volumes ?? []).filter((v) => v.emptyDir).map((v) => v.name));
    const writable = (container.volumeMounts ?? [])
      .filter((m) => emptyDirs.has(m.name) && !m.readOnly)
      .map((m) => m.mountPath);
    expect(writable).toContain("/tmp");
    // HOME comes from the image (Dockerfile: ENV HOME=/home/paas) unless the pod sets it.
    expect(writable).toContain(env("HOME") ?? "/home/paas");
  });

  it("reads the API keys from the Secret, mounted as the file API_KEY_FILE names", () => {
    const secret = all<V1Secret>("Secret").find((s) => s.metadata!.name === "paas-operator-api-keys")!;
    const volume = podSpec.volumes?.find((v) => v.secret?.secretName === secret.metadata!.name);
    expect(volume, `a volume of Secret ${secret.metadata!.name}`).toBeDefined();
    const mount = container.volumeMounts?.find((m) => m.name === volume!.name);
    expect(mount?.readOnly).toBe(true);
    const items = volume!.secret!.items;
    const keyFile = env("API_KEY_FILE");
    expect(keyFile, "API_KEY_FILE").toBeDefined();
    expect(env("API_KEY"), "no key in the pod spec").toBeUndefined();
    const [dir, file] = [keyFile!.slice(0, keyFile!.lastIndexOf("/")), keyFile!.slice(keyFile!.lastIndexOf("/") + 1)];
    expect(dir).toBe(mount!.mountPath);
    const key = items ? items.find((i) => i.path === file)?.key : file;
    expect(key, `${file} in the mounted Secret`).toBeDefined();
    expect(Object.keys({ ...secret.data, ...secret.stringData })).toContain(key);
    // The shipped placeholder must not be a usable key: the operator refuses to start with it.
    const shipped = { ...secret.stringData }[key!] ?? "";
    const keys = shipped
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"));
    expect(keys, "secret.yaml ships no valid API key").toEqual([]);
    expect(env("ALLOW_UNAUTHENTICATED") ?? "false").toBe("false");
  });

  it("runs two replicas that share the audit database through a Secret, with a disruption budget", () => {
    expect(deployment.spec!.replicas).toBe(2);
    const url = container.env?.find((e) => e.name === "AUDIT_DATABASE_URL");
    expect(url?.value, "no database URL (it holds a password) in the pod spec").toBeUndefined();
    const ref = url?.valueFrom?.secretKeyRef;
    const secret = all<V1Secret>("Secret").find((s) => s.metadata!.name === ref?.name);
    expect(secret, "the Secret AUDIT_DATABASE_URL names").toBeDefined();
    expect({ ...secret!.stringData }[ref!.key]).toMatch(/^postgresql:\/\//);
    // Replicas tell themselves apart in Leases and audit records by pod name.
    expect(container.env?.find((e) => e.name === "POD_NAME")?.valueFrom?.fieldRef?.fieldPath).toBe("metadata.name");
    const pdb = only<Manifest & { spec: { minAvailable: number; selector: { matchLabels: Record<string, string> } } }>(
      "PodDisruptionBudget",
    );
    expect(pdb.spec.minAvailable).toBe(1);
    expect(deployment.spec!.template.metadata!.labels).toMatchObject(pdb.spec.selector.matchLabels);
  });

  it("runs as the ServiceAccount the RBAC bindings name", () => {
    expect(podSpec.serviceAccountName).toBe(SA_NAME);
    for (const b of all<V1ClusterRoleBinding>("ClusterRoleBinding")) {
      expect(b.subjects, `${b.metadata!.name} subjects`).toEqual([
        { kind: "ServiceAccount", name: SA_NAME, namespace: OPERATOR_NS },
      ]);
      expect(all<V1ClusterRole>("ClusterRole").map((r) => r.metadata!.name)).toContain(b.roleRef.name);
    }
  });

  it("is selected by the Service, on port 8000", () => {
    const svc = only<V1Service>("Service");
    const podLabels = deployment.spec!.template.metadata!.labels!;
    for (const [k, v] of Object.entries(svc.spec!.selector!)) expect(podLabels[k], `pod label ${k}`).toBe(v);
    expect(deployment.spec!.selector.matchLabels).toEqual(svc.spec!.selector);
    const port = svc.spec!.ports![0]!;
    expect(port.port).toBe(8000);
    expect(portNumber(port.targetPort as number | string)).toBe(8000);
  });
});

describe("RBAC", () => {
  const roles = all<V1ClusterRole>("ClusterRole");
  const role = (name: string) => roles.find((r) => r.metadata!.name === name)?.rules ?? [];
  const operator = role("paas-operator");
  const operatorTenant = role("paas-operator-tenant");
  const deployer = role("paas-tenant-deployer");
  const TENANT_ROLES = ["paas-tenant-deployer", "paas-operator-tenant"];

  it("grants no wildcard, no escalate, no non-resource URL; bind and impersonate only by name", () => {
    expect(roles.map((r) => r.metadata!.name).sort()).toEqual([
      "paas-operator",
      "paas-operator-tenant",
      "paas-tenant-deployer",
    ]);
    // One namespaced Role: the operator's Leases, in its own namespace (checked below).
    expect(all<V1Role>("Role").map((r) => `${r.metadata!.namespace}/${r.metadata!.name}`)).toEqual([
      `${OPERATOR_NS}/paas-operator-leases`,
    ]);
    for (const r of [...roles, ...all<V1Role>("Role")] as V1ClusterRole[]) {
      expect(r.aggregationRule, `${r.metadata!.name} aggregationRule`).toBeUndefined();
      for (const rule of r.rules ?? []) {
        const where = `${r.metadata!.name}: ${JSON.stringify(rule)}`;
        expect(rule.verbs, where).not.toContain("*");
        expect(rule.resources ?? [], where).not.toContain("*");
        expect(rule.apiGroups ?? [], where).not.toContain("*");
        expect(
          (rule.resources ?? []).some((res) => res.includes("*")),
          where,
        ).toBe(false);
        expect(rule.verbs, where).not.toContain("escalate");
        expect(rule.nonResourceURLs, where).toBeUndefined();
        if (rule.verbs.includes("bind")) {
          expect(r.metadata!.name, where).toBe("paas-operator");
          expect(rule.resources, where).toEqual(["clusterroles"]);
          expect([...(rule.resourceNames ?? [])].sort(), where).toEqual([...TENANT_ROLES].sort());
        }
        if (rule.verbs.includes("impersonate")) {
          expect(r.metadata!.name, where).toBe("paas-operator");
          expect(rule, where).toMatchObject({
            apiGroups: [""],
            resources: ["serviceaccounts"],
            resourceNames: ["paas-deployer"],
            verbs: ["impersonate"],
          });
        }
      }
    }
    // Only the operator's own role is bound cluster-wide; the tenant roles are bound per namespace.
    expect(all<V1ClusterRoleBinding>("ClusterRoleBinding").map((b) => b.roleRef.name)).toEqual(["paas-operator"]);
    for (const name of TENANT_ROLES) {
      expect(
        roles.find((r) => r.metadata!.name === name)?.metadata?.labels?.["app.kubernetes.io/component"],
        `${name} is applied by test beds by label`,
      ).toBe("tenant-role");
    }
  });

  it("lets the operator handle Leases in its own namespace only, and nothing else there", () => {
    const leases = all<V1Role>("Role").find((r) => r.metadata!.name === "paas-operator-leases");
    expect(leases?.rules).toEqual([
      {
        apiGroups: ["coordination.k8s.io"],
        resources: ["leases"],
        verbs: ["get", "list", "watch", "create", "update", "delete"],
      },
    ]);
    const bindings = all<V1RoleBinding>("RoleBinding");
    expect(bindings.map((b) => [b.metadata!.namespace, b.metadata!.name, b.roleRef.kind, b.roleRef.name])).toEqual([
      [OPERATOR_NS, "paas-operator-leases", "Role", "paas-operator-leases"],
    ]);
    expect(bindings[0]!.subjects).toEqual([{ kind: "ServiceAccount", name: SA_NAME, namespace: OPERATOR_NS }]);
    // Cluster-wide, the operator has no right on Leases at all (tenant apps' leases are the deployer's).
    for (const verb of ["get", "list", "create", "update", "delete"])
      expect(allows(role("paas-operator"), verb, "coordination.k8s.io", "leases"), verb).toBe(false);
    // The Deployment puts them where the Role is: LEASE_NAMESPACE is the pod's namespace; POD_NAME names the replica.
    const fieldRef = (name: string) =>
      container.env?.find((e: V1EnvVar) => e.name === name)?.valueFrom?.fieldRef?.fieldPath;
    expect(fieldRef("LEASE_NAMESPACE")).toBe("metadata.namespace");
    expect(fieldRef("POD_NAMESPACE")).toBe("metadata.namespace");
    expect(fieldRef("POD_NAME")).toBe("metadata.name");
    expect(deployment.metadata?.namespace).toBe(leases?.metadata?.namespace);
  });

  it("grants what the operator's code, the operator's reads and helm do (offline check; the real one is below)", () => {
    const need = (rules: V1PolicyRule[], list: Array<[string, string, string[]]>, who: string) => {
      for (const [group, resource, verbs] of list) {
        for (const verb of verbs)
          expect(allows(rules, verb, group, resource), `${who}: ${verb} ${group || "core"}/${resource}`).toBe(true);
      }
    };
    // The operator, cluster-wide: provisioning (server-side apply = patch, + create when absent).
    need(
      operator,
      [
        ["", "namespaces", ["get", "list", "create", "patch", "delete"]],
        ["", "resourcequotas", ["get", "list", "create", "patch"]],
        ["", "limitranges", ["create", "patch"]],
        ["", "serviceaccounts", ["create", "patch"]],
        ["networking.k8s.io", "networkpolicies", ["create", "patch"]],
        ["rbac.authorization.k8s.io", "rolebindings", ["create", "patch"]],
      ],
      "paas-operator",
    );
    // ... and nothing to read Secrets or pods anywhere, nor any chart kind.
    for (const [group, resource] of [
      ["", "secrets"],
      ["", "pods"],
      ["", "configmaps"],
      ["apps", "deployments"],
    ] as const) {
      for (const verb of ["get", "list", "watch", "create"])
        expect(allows(operator, verb, group, resource), `paas-operator: ${verb} ${resource}`).toBe(false);
    }
    // The operator's reads inside a tenant namespace.
    need(
      operatorTenant,
      [
        ["", "pods", ["get", "list", "watch"]],
        ["", "secrets", ["get", "list", "watch"]],
      ],
      "paas-operator-tenant",
    );
    expect(
      operatorTenant.flatMap((r) => r.verbs).every((v) => ["get", "list", "watch"].includes(v)),
      "paas-operator-tenant is read-only",
    ).toBe(true);
    // helm as the deployer: what ordinary charts hold, and Helm's storage Secrets.
    const chartKinds: Array<[string, string]> = [
      ["apps", "deployments"],
      ["apps", "statefulsets"],
      ["", "services"],
      ["", "configmaps"],
      ["", "secrets"],
      ["", "pods"],
      ["", "persistentvolumeclaims"],
      ["", "serviceaccounts"],
      ["networking.k8s.io", "ingresses"],
      ["batch", "jobs"],
      ["batch", "cronjobs"],
      ["autoscaling", "horizontalpodautoscalers"],
      ["policy", "poddisruptionbudgets"],
      ["rbac.authorization.k8s.io", "roles"],
      ["rbac.authorization.k8s.io", "rolebindings"],
      ["coordination.k8s.io", "leases"],
    ];
    need(
      deployer,
      chartKinds.map(([g, r]) => [g, r, ["get", "list", "watch", "create", "update", "patch", "delete"]]),
      "paas-tenant-deployer",
    );
    need(
      deployer,
      [
        ["apps", "replicasets", ["get", "list", "watch"]],
        ["", "events", ["get", "list", "watch"]],
      ],
      "paas-tenant-deployer",
    );
    // Never: its own namespace's guard rails, anything cluster-scoped, DaemonSets, writing Endpoints.
    for (const [group, resource] of [
      ["", "namespaces"],
      ["", "resourcequotas"],
      ["", "limitranges"],
      ["networking.k8s.io", "networkpolicies"],
      ["rbac.authorization.k8s.io", "clusterroles"],
      ["rbac.authorization.k8s.io", "clusterrolebindings"],
      ["apiextensions.k8s.io", "customresourcedefinitions"],
      ["", "nodes"],
      ["", "persistentvolumes"],
      ["apps", "daemonsets"],
      ["", "endpoints"],
    ] as const) {
      for (const rules of [deployer, operatorTenant]) {
        for (const verb of ["create", "update", "patch", "delete"])
          expect(allows(rules, verb, group, resource), `${verb} ${resource}`).toBe(false);
      }
    }
    for (const verb of ["bind", "escalate", "impersonate"])
      expect(
        deployer.some((r) => r.verbs.includes(verb)),
        `deployer ${verb}`,
      ).toBe(false);
  });
});

describe("ValidatingAdmissionPolicy", () => {
  it("is bound, uses the Deployment's prefix and names the operator's ServiceAccount", () => {
    const policy = all<
      Manifest & {
        spec: {
          matchConditions: Array<{ expression: string }>;
          variables: Array<{ name: string; expression: string }>;
        };
      }
    >("ValidatingAdmissionPolicy").find((p) => p.metadata.name === OPERATOR_POLICY)!;
    const binding = all<Manifest & { spec: { policyName: string; validationActions: string[] } }>(
      "ValidatingAdmissionPolicyBinding",
    ).find((b) => b.spec.policyName === OPERATOR_POLICY)!;
    expect(binding.spec.policyName).toBe(policy.metadata.name);
    expect(binding.spec.validationActions).toEqual(["Deny"]);
    expect(policy.spec.variables.find((v) => v.name === "prefix")?.expression, "policy prefix = NAMESPACE_PREFIX").toBe(
      JSON.stringify(PREFIX),
    );
    expect(policy.spec.matchConditions.map((c) => c.expression).join(" ")).toContain(`"${REAL_SA_USER}"`);
  });
});

// ---------------------------------------------------------------- 4. for real, as the operator

describe("as the operator's ServiceAccount (RBAC and admission policy installed for real)", () => {
  let asOperator: KubeConfig;
  let api: KubernetesObjectApi;
  let operatorKubeconfig: string;
  const tenantRoles = { deployer: `paas-tenant-deployer-${SUFFIX}`, operator: `paas-operator-tenant-${SUFFIX}` };
  const DEPLOYER = `system:serviceaccount:${TENANT}:paas-deployer`;

  beforeAll(async () => {
    // The Namespace (and the ServiceAccount) exist from the dry-run block; install the
    // rest of the access control for real, renamed for this run.
    for (const kind of [
      "ClusterRole",
      "ClusterRoleBinding",
      "Role",
      "RoleBinding",
      "ValidatingAdmissionPolicy",
      "ValidatingAdmissionPolicyBinding",
    ]) {
      for (const obj of all<Manifest>(kind)) {
        const copy = forTest(obj);
        await admin.create(copy).catch((err: unknown) => {
          throw new Error(`create of ${label(copy)} failed: ${describeError(err)}`);
        });
        created.push(copy);
      }
    }
    // A real token of the operator's ServiceAccount: the operator impersonates the tenants'
    // deployers, which an admin impersonating the operator could not show (one level only).
    const core = kc.makeApiClient(CoreV1Api);
    const token = await core.createNamespacedServiceAccountToken({
      namespace: TEST_NS,
      name: SA_NAME,
      body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 3600 } },
    });
    const cluster = kc.getCurrentCluster()!;
    asOperator = new KubeConfig();
    asOperator.loadFromOptions({
      clusters: [cluster],
      users: [{ name: "operator", token: token.status!.token }],
      contexts: [{ name: "operator", cluster: cluster.name, user: "operator" }],
      currentContext: "operator",
    });
    helmHome = mkdtempSync(join(tmpdir(), "paas-manifests-helm-"));
    operatorKubeconfig = join(helmHome, "kubeconfig");
    writeFileSync(operatorKubeconfig, asOperator.exportConfig(), { mode: 0o600 });
    api = KubernetesObjectApi.makeApiClient(asOperator);
    // RBAC and admission policies reach the API server's caches asynchronously.
    await eventually("RBAC in force", 30_000, async () => {
      await api.list("v1", "Namespace", undefined, undefined, undefined, undefined, undefined, undefined, 1);
    });
    await eventually("admission policy in force", 30_000, async () => {
      const r = await refused(() =>
        api.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: `outside-${SUFFIX}` } }, undefined, "All"),
      );
      if (r.code !== 403 || !r.message.includes("paas-operator may only change")) throw new Error(r.message);
    });
  });

  it("has an admission policy whose CEL type-checks without warnings", async () => {
    type Vap = KubernetesObject & {
      metadata: { generation?: number };
      status?: { observedGeneration?: number; typeChecking?: { expressionWarnings?: unknown[] } };
    };
    for (const policy of all<Manifest>("ValidatingAdmissionPolicy")) {
      const name = forTest(policy).metadata.name;
      await eventually(`policy ${name} type-checked`, 30_000, async () => {
        const vap = await admin.read<Vap>({
          apiVersion: "admissionregistration.k8s.io/v1",
          kind: "ValidatingAdmissionPolicy",
          metadata: { name },
        });
        if (vap.status?.observedGeneration !== vap.metadata.generation) throw new Error("not observed yet");
        expect(vap.status?.typeChecking?.expressionWarnings ?? []).toEqual([]);
      });
    }
  });

  it("provisions a tenant namespace: quota, Pod Security, NetworkPolicy, deployer, RoleBindings, ready", async () => {
    const kube = createKubeClient({ kubeConfig: asOperator, logger: pino({ level: "silent" }), tenantRoles });
    const made = await kube.ensureNamespace(TENANT, { cpu: "4", memory: "8Gi", storage: "20Gi" });
    expect(made.created).toBe(true);
    expect(made.namespace).toMatchObject({ ready: true, podSecurity: "restricted" });
    expect(made.namespace.quota.length).toBeGreaterThan(0);
    expect((await kube.ensureNamespace(TENANT, { cpu: "4", memory: "8Gi", storage: "20Gi" })).created).toBe(false);
    expect((await kube.getNamespace(TENANT)).name).toBe(TENANT);
    expect((await kube.listNamespaces(PREFIX)).map((n) => n.name)).toContain(TENANT);
    // Its reads in the namespace go through the RoleBinding it gave itself.
    expect(await kube.listReleasePods(TENANT, "web")).toEqual([]);
    expect(await kube.getStoredRelease(TENANT, "web")).toBeUndefined();
    const binding = await admin.read<KubernetesObject & { subjects: unknown[] }>({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "paas-operator", namespace: TENANT },
    });
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: SA_NAME, namespace: TEST_NS }]);
  });

  it("takes, renews and gives up a release Lease in its own namespace, and may not write other objects there", async () => {
    const leases = new LeaseManager({
      kubeConfig: asOperator,
      namespace: TEST_NS,
      durationSeconds: 6,
      replica: "manifests-test",
      logger: pino({ level: "silent" }),
    });
    await leases.ensureNamespace();
    // The watched copy behind locked_by lists and watches with the operator's rights too.
    await asOperator.makeApiClient(CoordinationV1Api).listNamespacedLease({ namespace: TEST_NS });
    const held = await leases.acquire({ namespace: TENANT, release: "web" }, "op1", Date.now() + 10_000);
    expect((await leases.holderOf(TENANT, "web"))?.holder).toBe("manifests-test/op1");
    await held.release();
    expect(held.lost.aborted).toBe(false);
    expect(await leases.holderOf(TENANT, "web")).toBeUndefined();
    // Leases only: a ConfigMap in the operator's namespace is refused.
    const r = await refused(() =>
      api.create({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x", namespace: TEST_NS } }),
    );
    expect(r.code).toBe(403);
    await leases.releaseAll();
  });

  describe("helm, as the tenant's deployer (impersonated by the operator), through the service's helm adapter", () => {
    let cli: HelmCli;
    let repo: string;

    beforeAll(() => {
      repo = requireEnv("CHART_REPO_URL");
      cli = createHelmCli({
        binary: requireEnv("HELM_BINARY"),
        logger: pino({ level: "silent" }),
        tmpDir: helmHome,
        env: { KUBECONFIG: operatorKubeconfig },
        tenant: createTenantAccess({ kubeConfig: asOperator, managedLabel: DEFAULT_MANAGED_LABEL }),
      });
    });
    afterAll(async () => {
      await cli?.close();
    });

    const chart = (name: string, version: string) => ({ ref: name, version, repoUrl: repo });
    const common = { namespace: TENANT, timeoutSeconds: 90, createNamespace: false, labels: {} };
    const restricted = {
      podSecurityContext: { runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: "RuntimeDefault" } },
      securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
    };

    it("installs podinfo with a hook Job, HPA, PDB, Ingress and ServiceAccount, and waits for it", async () => {
      const values = {
        ...restricted,
        replicaCount: 2,
        hpa: { enabled: true },
        serviceAccount: { enabled: true },
        ingress: { enabled: true },
        podDisruptionBudget: { maxUnavailable: 1 },
        hooks: { preInstall: { job: { enabled: true } } },
      };
      // The pre-install hook Job of podinfo has no securityContext: under "restricted" Pod
      // Security its pod would be refused, and the render guard says so before anything runs.
      await expect(
        cli.install({ ...common, name: "web", chart: chart("podinfo", "6.14.1"), values, wait: true }),
      ).rejects.toMatchObject({
        kind: "failed_precondition",
        message: expect.stringContaining('Job "web-podinfo-pre-install" in namespace'),
      });
      const relaxed = createKubeClient({ kubeConfig: asOperator, logger: pino({ level: "silent" }), tenantRoles });
      await relaxed.ensureNamespace(TENANT, { cpu: "4", memory: "8Gi", storage: "20Gi" }, { podSecurity: "baseline" });
      const rel = await cli.install({ ...common, name: "web", chart: chart("podinfo", "6.14.1"), values, wait: true });
      expect(rel.status).toBe("deployed");
    });

    it("upgrades, rolls back and reads history and the release list", async () => {
      await cli.upgrade({
        ...common,
        name: "web",
        chart: chart("podinfo", "6.13.0"),
        values: {},
        resetValues: false,
        reuseValues: true,
        wait: true,
      });
      await cli.rollback({ namespace: TENANT, name: "web", revision: 1, wait: true, timeoutSeconds: 90 });
      expect(await cli.history(TENANT, "web")).toHaveLength(3);
      expect((await cli.list(TENANT)).map((r) => r.name)).toContain("web");
    });

    it("installs postgresql (StatefulSet, Secret, PDB, ServiceAccount; its NetworkPolicy dropped)", async () => {
      const rel = await cli.install({
        ...common,
        name: "db",
        chart: chart("postgresql", "17.1.0"),
        values: { primary: { persistence: { enabled: false } } },
        wait: true,
      });
      expect(rel.status).toBe("deployed");
    });

    it("cannot install a chart with cluster-scoped objects: the guard refuses, and RBAC would", async () => {
      await expect(
        cli.install({
          ...common,
          name: "ic",
          chart: chart("nginx-ingress-controller", "12.0.9"),
          values: {},
          wait: false,
        }),
      ).rejects.toMatchObject({
        kind: "failed_precondition",
        message: expect.stringMatching(
          /^The chart was refused before anything was applied: ClusterRole "ic-nginx-ingress-controller": ClusterRole is cluster-scoped/,
        ),
      });
      // Without the guard (plain helm, same identities), RBAC refuses the ClusterRole (and,
      // had the chart kept its NetworkPolicy, that first: the deployer may not even read those).
      const direct = await run(
        requireEnv("HELM_BINARY"),
        [
          "install",
          "ic",
          "nginx-ingress-controller",
          "--repo",
          repo,
          "--version",
          "12.0.9",
          "--set",
          "networkPolicy.enabled=false,defaultBackend.networkPolicy.enabled=false",
          "--namespace",
          TENANT,
          "--kube-as-user",
          DEPLOYER,
        ],
        {
          env: {
            ...process.env,
            KUBECONFIG: operatorKubeconfig,
            HELM_CACHE_HOME: join(helmHome!, "c"),
            HELM_CONFIG_HOME: join(helmHome!, "cf"),
            HELM_DATA_HOME: join(helmHome!, "d"),
            HELM_DRIVER: "secret",
          },
        },
      ).then(
        () => undefined,
        (e: { stderr?: string }) => e,
      );
      expect(direct, "the install should have been refused").toBeDefined();
      expect(direct!.stderr).toMatch(
        new RegExp(`clusterroles\\.rbac\\.authorization\\.k8s\\.io .*is forbidden: User "${DEPLOYER}"`),
      );
      await cli.uninstall({ namespace: TENANT, name: "ic", timeoutSeconds: 60 }).catch(() => undefined);
    });

    it("uninstalls", async () => {
      await cli.uninstall({ namespace: TENANT, name: "web", timeoutSeconds: 90 });
      await cli.uninstall({ namespace: TENANT, name: "db", timeoutSeconds: 90 });
    });
  });

  it("is refused writes outside tenant namespaces, cluster-scoped objects, the quota as a chart, and chart kinds", async () => {
    const sa = (namespace: string) => ({
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: `probe-${SUFFIX}`, namespace },
    });
    // Allowed by RBAC everywhere (provisioning), refused by the admission policy outside the prefix.
    for (const ns of ["default", "kube-system", TEST_NS]) {
      const r = await refused(() => api.create(sa(ns), undefined, "All"));
      expect(r.code, `create ServiceAccount in ${ns}: ${r.message}`).toBe(403);
      expect(r.message).toContain("paas-operator may only change");
    }
    await api.create(sa(TENANT), undefined, "All");
    const del = await refused(() =>
      api.delete({ apiVersion: "v1", kind: "Namespace", metadata: { name: "default" } }, undefined, "All"),
    );
    expect(del.code, del.message).toBe(403);
    // Not granted by RBAC at all: cluster-scoped objects, and chart kinds even in a tenant namespace.
    const cr = await refused(() =>
      api.create(
        {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "ClusterRole",
          metadata: { name: `probe-${SUFFIX}` },
          rules: [],
        } as KubernetesObject,
        undefined,
        "All",
      ),
    );
    expect(cr.code, cr.message).toBe(403);
    const cm = await refused(() =>
      api.create(
        { apiVersion: "v1", kind: "ConfigMap", metadata: { name: `probe-${SUFFIX}`, namespace: TENANT } },
        undefined,
        "All",
      ),
    );
    expect(cm.code, cm.message).toBe(403);
    // A chart (helm's field manager) may not change the tenant quota; the operator may.
    const quota = {
      apiVersion: "v1",
      kind: "ResourceQuota",
      metadata: { name: "paas-quota", namespace: TENANT },
      spec: { hard: { pods: "1000" } },
    };
    const q = await refused(() => api.patch(quota, undefined, "All", "helm", true, PatchStrategy.ServerSideApply));
    expect(q.code, q.message).toBe(403);
    expect(q.message).toContain("charts cannot change the tenant quota");
    const qd = await refused(() => api.delete(quota, undefined, "All"));
    expect(qd.code, qd.message).toBe(403);
  });

  it("reads Secrets and pods only in tenant namespaces, impersonates only deployers, binds only the tenant roles", async () => {
    const core = asOperator.makeApiClient(CoreV1Api);
    for (const ns of ["kube-system", "default", TEST_NS]) {
      expect((await refused(() => core.listNamespacedSecret({ namespace: ns }))).code, `secrets in ${ns}`).toBe(403);
      expect((await refused(() => core.listNamespacedPod({ namespace: ns }))).code, `pods in ${ns}`).toBe(403);
    }
    await core.listNamespacedSecret({ namespace: TENANT });
    const as = (user: string) =>
      refused(() =>
        impersonating(asOperator, user).makeApiClient(CoreV1Api).listNamespacedSecret({ namespace: TENANT }),
      );
    for (const user of [
      `system:serviceaccount:${TENANT}:default`,
      `system:serviceaccount:kube-system:paas-deployer-x`,
      "admin",
      `system:serviceaccount:${TEST_NS}:${SA_NAME}-other`,
    ]) {
      const r = await as(user);
      expect(r.code, `impersonate ${user}: ${r.message}`).toBe(403);
      expect(r.message).toContain("cannot impersonate");
    }
    const bind = (roleName: string) =>
      refused(() =>
        api.create(
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "RoleBinding",
            metadata: { name: `probe-${roleName}`, namespace: TENANT },
            roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: roleName },
            subjects: [{ kind: "ServiceAccount", name: "default", namespace: TENANT }],
          } as KubernetesObject,
          undefined,
          "All",
        ),
      );
    for (const roleName of ["cluster-admin", "admin", "edit", "paas-tenant-deployer"]) {
      const r = await bind(roleName);
      expect(r.code, `bind ${roleName}: ${r.message}`).toBe(403);
    }
  });

  it("deletes the tenant namespace through the operator's code", async () => {
    const kube = createKubeClient({ kubeConfig: asOperator, logger: pino({ level: "silent" }), tenantRoles });
    await kube.deleteNamespace(TENANT);
  });
});
