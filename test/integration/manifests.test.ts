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
 *  4. installed for real (under unique names), as the operator's ServiceAccount: the
 *     operator's own Kubernetes code and real helm installs work in a tenant namespace, and
 *     writes outside tenant namespaces, to cluster-scoped objects and to the quota are refused.
 *
 * Needs the testbed's environment (`set -a; source .testbed/env; set +a`): it fails, never
 * skips, when KUBECONFIG is unset.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  ApiException,
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
  type V1Secret,
  type V1Service,
  type V1ServiceAccount,
} from "@kubernetes/client-node";
import { loadAll, YAML11_SCHEMA } from "js-yaml";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKubeClient } from "../../src/kube/client.ts";

const run = promisify(execFile);

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const K8S_DIR = join(REPO, "k8s");

// ---------------------------------------------------------------- the manifests

// Parsed YAML: plain objects, read through the client's types once the kind is known.
type Manifest = KubernetesObject & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; [key: string]: unknown };

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

const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]);

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
    if (obj.metadata.namespace !== OPERATOR_NS) throw new Error(`${obj.kind}/${obj.metadata.name} is in ${obj.metadata.namespace}, not ${OPERATOR_NS}`);
    obj.metadata.namespace = TEST_NS;
  }
  if (obj.kind === "ClusterRoleBinding") {
    obj.roleRef.name = `${obj.roleRef.name}-${SUFFIX}`;
    for (const s of obj.subjects ?? []) if (s.namespace === OPERATOR_NS) s.namespace = TEST_NS;
  }
  if (obj.kind === "ValidatingAdmissionPolicyBinding") obj.spec.policyName = `${obj.spec.policyName}-${SUFFIX}`;
  if (obj.kind === "ValidatingAdmissionPolicy") {
    for (const c of obj.spec.matchConditions ?? []) {
      if (!c.expression.includes(REAL_SA_USER)) throw new Error(`matchCondition ${c.name} does not name ${REAL_SA_USER}`);
      c.expression = c.expression.replaceAll(REAL_SA_USER, TEST_SA_USER);
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

/** impersonating returns a copy of kc whose requests are made as `user` (Impersonate-User). */
function impersonating(kc: KubeConfig, user: string): KubeConfig {
  const current = kc.getCurrentUser()?.name;
  const out = new KubeConfig();
  out.loadFromOptions({
    clusters: kc.clusters,
    contexts: kc.contexts,
    currentContext: kc.currentContext,
    users: kc.users.map((u) => (u.name === current ? { ...u, impersonateUser: user } : u)),
  });
  return out;
}

function requireEnv(name: string): string {
  const v = process.env[name];
  if (!v) {
    throw new Error(
      `${name} is not set: this e2e test needs the local testbed. Run \`npm run testbed:up\`, then ` +
        "`set -a; source .testbed/env; set +a` before `npx vitest run --project e2e test/integration/manifests.test.ts`.",
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
      if (!(err instanceof ApiException && err.code === 404)) console.warn(`cleanup of ${label(obj)} failed: ${describeError(err)}`);
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
      if (CLUSTER_SCOPED.has(obj.kind)) expect(obj.metadata.namespace, `${file}: ${label(obj)} is cluster-scoped`).toBeUndefined();
      else expect(obj.metadata.namespace, `${file}: ${label(obj)}`).toBe(OPERATOR_NS);
      expect((obj.metadata as { labels?: Record<string, string> }).labels?.["app.kubernetes.io/name"], `${file}: ${label(obj)} labels`).toBe(
        "paas-operator",
      );
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
        throw new Error(`dry-run create of ${label(copy)} from k8s/${file} failed: ${describeError(err)}`);
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
      throw new Error(`the operator pod violates the namespace's Pod Security level: ${describeError(err)}`);
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
    expect(grace!, `terminationGracePeriodSeconds ${grace} vs HELM_TIMEOUT ${helmTimeout}s`).toBeGreaterThan(helmTimeout);
    expect(shutdownGrace, "SHUTDOWN_GRACE must cover a helm operation (HELM_TIMEOUT) plus its SIGTERM margin").toBeGreaterThan(helmTimeout + 15);
    // The kubelet's clock includes the preStop hook; leave a few seconds to exit.
    expect(grace!, `terminationGracePeriodSeconds ${grace} vs preStop ${preStop}s + SHUTDOWN_GRACE ${shutdownGrace}s`).toBeGreaterThanOrEqual(
      preStop + shutdownGrace + 5,
    );
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
    const writable = (container.volumeMounts ?? []).filter((m) => emptyDirs.has(m.name) && !m.readOnly).map((m) => m.mountPath);
    expect(writable).toContain("/tmp");
    // HOME comes from the image (Dockerfile: ENV HOME=/home/paas) unless the pod sets it.
    expect(writable).toContain(env("HOME") ?? "/home/paas");
  });

  it("reads the API keys from the Secret, mounted as the file API_KEY_FILE names", () => {
    const secret = only<V1Secret>("Secret");
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
    const keys = shipped.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
    expect(keys, "secret.yaml ships no valid API key").toEqual([]);
    expect(env("ALLOW_UNAUTHENTICATED") ?? "false").toBe("false");
  });

  it("runs as the ServiceAccount the RBAC bindings name", () => {
    expect(podSpec.serviceAccountName).toBe(SA_NAME);
    for (const b of all<V1ClusterRoleBinding>("ClusterRoleBinding")) {
      expect(b.subjects, `${b.metadata!.name} subjects`).toEqual([{ kind: "ServiceAccount", name: SA_NAME, namespace: OPERATOR_NS }]);
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
  const rules = roles.flatMap((r) => r.rules ?? []);

  it("grants no wildcard, no escalation and no non-resource URLs", () => {
    expect(roles.length).toBeGreaterThan(0);
    expect(all<Manifest>("Role")).toEqual([]);
    for (const role of roles) {
      expect(role.aggregationRule, `${role.metadata!.name} aggregationRule`).toBeUndefined();
      for (const rule of role.rules ?? []) {
        const where = `${role.metadata!.name}: ${JSON.stringify(rule)}`;
        expect(rule.verbs, where).not.toContain("*");
        expect(rule.resources ?? [], where).not.toContain("*");
        expect(rule.apiGroups ?? [], where).not.toContain("*");
        expect((rule.resources ?? []).some((r) => r.includes("*")), where).toBe(false);
        for (const verb of ["escalate", "bind", "impersonate"]) expect(rule.verbs, where).not.toContain(verb);
        expect(rule.nonResourceURLs, where).toBeUndefined();
      }
    }
  });

  it("grants what the operator's code and helm do (offline check; the real one is below)", () => {
    const need: Array<[string, string, string[]]> = [
      // operator: namespaces, quotas (server-side apply = patch, + create when absent), pods and helm storage
      ["", "namespaces", ["get", "list", "create", "delete"]],
      ["", "resourcequotas", ["get", "list", "create", "patch"]],
      ["", "limitranges", ["create", "patch"]],
      ["", "pods", ["list", "watch"]],
      ["", "secrets", ["get", "list", "watch", "create", "update", "delete"]],
    ];
    const chartKinds: Array<[string, string]> = [
      ["apps", "deployments"],
      ["apps", "statefulsets"],
      ["", "services"],
      ["", "configmaps"],
      ["", "secrets"],
      ["", "persistentvolumeclaims"],
      ["networking.k8s.io", "ingresses"],
      ["batch", "jobs"],
      ["autoscaling", "horizontalpodautoscalers"],
      ["policy", "poddisruptionbudgets"],
      ["", "serviceaccounts"],
      ["rbac.authorization.k8s.io", "roles"],
      ["rbac.authorization.k8s.io", "rolebindings"],
      ["networking.k8s.io", "networkpolicies"],
    ];
    for (const [group, resource] of chartKinds) need.push([group, resource, ["get", "list", "watch", "create", "update", "patch", "delete"]]);
    for (const [group, resource, verbs] of need) {
      for (const verb of verbs) expect(allows(rules, verb, group, resource), `${verb} ${group || "core"}/${resource}`).toBe(true);
    }
    // Cluster-scoped kinds a chart could try: none.
    for (const [group, resource] of [
      ["rbac.authorization.k8s.io", "clusterroles"],
      ["rbac.authorization.k8s.io", "clusterrolebindings"],
      ["apiextensions.k8s.io", "customresourcedefinitions"],
      ["", "nodes"],
      ["", "persistentvolumes"],
    ] as const) {
      expect(allows(rules, "create", group, resource), `create ${resource}`).toBe(false);
    }
  });
});

describe("ValidatingAdmissionPolicy", () => {
  it("is bound, uses the Deployment's prefix and names the operator's ServiceAccount", () => {
    const policy = only<Manifest & { spec: { matchConditions: Array<{ expression: string }>; variables: Array<{ name: string; expression: string }> } }>(
      "ValidatingAdmissionPolicy",
    );
    const binding = only<Manifest & { spec: { policyName: string; validationActions: string[] } }>("ValidatingAdmissionPolicyBinding");
    expect(binding.spec.policyName).toBe(policy.metadata.name);
    expect(binding.spec.validationActions).toEqual(["Deny"]);
    expect(policy.spec.variables.find((v) => v.name === "prefix")?.expression, "policy prefix = NAMESPACE_PREFIX").toBe(JSON.stringify(PREFIX));
    expect(policy.spec.matchConditions.map((c) => c.expression).join(" ")).toContain(`"${REAL_SA_USER}"`);
  });
});

// ---------------------------------------------------------------- 4. for real, as the operator

describe("as the operator's ServiceAccount (RBAC and admission policy installed for real)", () => {
  let asOperator: KubeConfig;
  let api: KubernetesObjectApi;

  beforeAll(async () => {
    // The Namespace (and the ServiceAccount) exist from the dry-run block; install the
    // rest of the access control for real, renamed for this run.
    for (const kind of ["ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]) {
      for (const obj of all<Manifest>(kind)) {
        const copy = forTest(obj);
        await admin.create(copy).catch((err: unknown) => {
          throw new Error(`create of ${label(copy)} failed: ${describeError(err)}`);
        });
        created.push(copy);
      }
    }
    asOperator = impersonating(kc, TEST_SA_USER);
    api = KubernetesObjectApi.makeApiClient(asOperator);
    // RBAC and admission policies reach the API server's caches asynchronously.
    await eventually("RBAC in force", 30_000, async () => {
      await api.list("v1", "Namespace", undefined, undefined, undefined, undefined, undefined, undefined, 1);
    });
    await eventually("admission policy in force", 30_000, async () => {
      const r = await refused(() => api.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: `outside-${SUFFIX}` } }, undefined, "All"));
      if (r.code !== 403 || !r.message.includes("paas-operator may only change")) throw new Error(r.message);
    });
  });

  it("has an admission policy whose CEL type-checks without warnings", async () => {
    const name = forTest(only<Manifest>("ValidatingAdmissionPolicy")).metadata.name;
    type Vap = KubernetesObject & { metadata: { generation?: number }; status?: { observedGeneration?: number; typeChecking?: { expressionWarnings?: unknown[] } } };
    await eventually("policy type-checked", 30_000, async () => {
      const vap = await admin.read<Vap>({ apiVersion: "admissionregistration.k8s.io/v1", kind: "ValidatingAdmissionPolicy", metadata: { name } });
      if (vap.status?.observedGeneration !== vap.metadata.generation) throw new Error("not observed yet");
      expect(vap.status?.typeChecking?.expressionWarnings ?? []).toEqual([]);
    });
  });

  it("runs the operator's namespace code: create with quota, read, list", async () => {
    const kube = createKubeClient({ kubeConfig: asOperator, logger: pino({ level: "silent" }) });
    const made = await kube.ensureNamespace(TENANT, { cpu: "4", memory: "8Gi", storage: "20Gi" });
    expect(made.created).toBe(true);
    expect(made.namespace.quota.length).toBeGreaterThan(0);
    expect((await kube.ensureNamespace(TENANT, { cpu: "4", memory: "8Gi", storage: "20Gi" })).created).toBe(false);
    expect((await kube.getNamespace(TENANT)).name).toBe(TENANT);
    expect((await kube.listNamespaces(PREFIX)).map((n) => n.name)).toContain(TENANT);
    expect(await kube.listReleasePods(TENANT, "web")).toEqual([]);
    expect(await kube.getStoredRelease(TENANT, "web")).toBeUndefined();
  });

  describe("helm, with the operator's identity", () => {
    let helm: (args: string[], timeoutMs?: number) => Promise<{ stdout: string; stderr: string }>;
    let repo: string;

    beforeAll(() => {
      const binary = requireEnv("HELM_BINARY");
      repo = requireEnv("CHART_REPO_URL");
      helmHome = mkdtempSync(join(tmpdir(), "paas-manifests-helm-"));
      const home = helmHome;
      helm = (args, timeoutMs = 120_000) =>
        run(binary, [...args, "--namespace", TENANT, "--kube-as-user", TEST_SA_USER], {
          timeout: timeoutMs,
          maxBuffer: 16 * 1024 * 1024,
          env: {
            ...process.env,
            HELM_CACHE_HOME: join(home, "cache"),
            HELM_CONFIG_HOME: join(home, "config"),
            HELM_DATA_HOME: join(home, "data"),
            HELM_DRIVER: "secret",
            NO_COLOR: "1",
          },
        });
    });

    async function helmOk(args: string[]): Promise<string> {
      try {
        return (await helm(args)).stdout;
      } catch (err) {
        const e = err as { stderr?: string; message: string };
        throw new Error(`helm ${args.join(" ")} failed as ${TEST_SA_USER}: ${e.stderr || e.message}`);
      }
    }

    it("installs podinfo with a hook Job, HPA, PDB, Ingress and ServiceAccount, and waits for it", async () => {
      await helmOk([
        "install", "web", "podinfo", "--repo", repo, "--version", "6.14.1",
        "--set", "replicaCount=2,hpa.enabled=true,serviceAccount.enabled=true,ingress.enabled=true",
        "--set", "podDisruptionBudget.maxUnavailable=1,hooks.preInstall.job.enabled=true",
        "--wait", "--timeout", "90s",
      ]); // prettier-ignore
      const kube = createKubeClient({ kubeConfig: asOperator, logger: pino({ level: "silent" }) });
      expect((await kube.getStoredRelease(TENANT, "web"))?.release.status).toBe("deployed");
    });

    it("upgrades, rolls back and reads history and the release list", async () => {
      await helmOk(["upgrade", "web", "podinfo", "--repo", repo, "--version", "6.13.0", "--reuse-values", "--wait", "--timeout", "90s"]);
      await helmOk(["rollback", "web", "1", "--wait", "--timeout", "90s"]);
      const history = JSON.parse(await helmOk(["history", "web", "--output", "json"])) as unknown[];
      expect(history).toHaveLength(3);
      expect(await helmOk(["list", "--output", "json"])).toContain('"web"');
    });

    it("installs postgresql (StatefulSet, Secret, NetworkPolicy, PDB, ServiceAccount)", async () => {
      await helmOk(["install", "db", "postgresql", "--repo", repo, "--version", "17.1.0", "--wait", "--timeout", "90s"]);
    });

    it("cannot install a chart with cluster-scoped objects", async () => {
      const err = await helm(["install", "ic", "nginx-ingress-controller", "--repo", repo, "--version", "12.0.9"]).then(
        () => undefined,
        (e: { stderr?: string }) => e,
      );
      expect(err, "the install should have been refused").toBeDefined();
      // Refused by RBAC: the ClusterRole it ships (cluster-scoped) is out of reach.
      expect(err!.stderr).toMatch(/clusterroles\.rbac\.authorization\.k8s\.io .*is forbidden/);
    });

    it("uninstalls", async () => {
      await helmOk(["uninstall", "web", "--wait", "--timeout", "90s"]);
      await helmOk(["uninstall", "db", "--wait", "--timeout", "90s"]);
    });
  });

  it("is refused writes outside tenant namespaces, to cluster-scoped objects and to the quota", async () => {
    const cm = (namespace: string) => ({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: `probe-${SUFFIX}`, namespace } });
    // Allowed by RBAC everywhere, refused by the admission policy outside the prefix.
    for (const ns of ["default", "kube-system", TEST_NS]) {
      const r = await refused(() => api.create(cm(ns), undefined, "All"));
      expect(r.code, `create ConfigMap in ${ns}: ${r.message}`).toBe(403);
      expect(r.message).toContain("paas-operator may only change");
    }
    await api.create(cm(TENANT), undefined, "All");
    const del = await refused(() => api.delete({ apiVersion: "v1", kind: "Namespace", metadata: { name: "default" } }, undefined, "All"));
    expect(del.code, del.message).toBe(403);
    // Not granted by RBAC at all.
    const cr = await refused(() =>
      api.create({ apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name: `probe-${SUFFIX}` }, rules: [] } as KubernetesObject, undefined, "All"),
    );
    expect(cr.code, cr.message).toBe(403);
    // A chart (helm's field manager) may not change the tenant quota; the operator may.
    const quota = { apiVersion: "v1", kind: "ResourceQuota", metadata: { name: "paas-quota", namespace: TENANT }, spec: { hard: { pods: "1000" } } };
    const q = await refused(() => api.patch(quota, undefined, "All", "helm", true, PatchStrategy.ServerSideApply));
    expect(q.code, q.message).toBe(403);
    expect(q.message).toContain("charts cannot change the tenant quota");
    const qd = await refused(() => api.delete(quota, undefined, "All"));
    expect(qd.code, qd.message).toBe(403);
  });

  it("deletes the tenant namespace through the operator's code", async () => {
    const kube = createKubeClient({ kubeConfig: asOperator, logger: pino({ level: "silent" }) });
    await kube.deleteNamespace(TENANT);
  });
});
