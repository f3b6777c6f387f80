import {
  AuthenticationV1Api,
  AuthorizationV1Api,
  type CoreV1Api,
  type KubeConfig,
  NetworkingV1Api,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
  type V1Namespace,
  type V1ResourceQuota,
} from "@kubernetes/client-node";
import type { Logger } from "pino";
import { PaasError } from "../../errors.ts";
import { assertNamespaceName } from "../../domain/names.ts";
import { isPodSecurityLevel, POD_SECURITY_LEVELS, type PodSecurityLevel } from "../../domain/pod-security-levels.ts";
import {
  type LabelSelector,
  parseLabelSelector,
  selectorKeys,
  selectorMatches,
  selectsByValue,
} from "../../domain/selectors.ts";
import { httpCodeOf, kubeError } from "../api/api-errors.ts";
import { createApi, getJson } from "../api/api-http.ts";
import { impersonating } from "../api/impersonation.ts";
import { LIMIT_RANGE_NAME, limitRangeManifest, QUOTA_NAME, quotaItems, quotaManifest, validateQuota } from "./quota.ts";
import {
  clusterMinor,
  DEFAULT_TENANT_ROLES,
  DEPLOYER_BINDING,
  DEPLOYER_SERVICE_ACCOUNT,
  deployerServiceAccountManifest,
  deployerUser,
  NETWORK_POLICY_NAME,
  namespaceApply,
  networkPolicyManifest,
  OPERATOR_BINDING,
  podSecurityLabels,
  PSA_ENFORCE,
  READY_LABEL,
  roleBindingManifest,
  type RbacSubject,
  subjectForUser,
  type TenantRoles,
} from "./tenant-objects.ts";
import type { NamespaceInfo, NamespaceOptions, QuotaSpec } from "../kube-types.ts";
import type { StepSink } from "../../domain/steps.ts";

/** FIELD_MANAGER names this service in server-side apply's managedFields. */
export const FIELD_MANAGER = "paas-operator";

/** ManagedLabel marks the namespaces this service created, e.g. app.kubernetes.io/managed-by=paas-operator. */
export interface ManagedLabel {
  key: string;
  value: string;
}

// Server-side apply: the API server merges our fields and owns the create-or-update race.
// client-node picks application/json-patch+json for every patch; the per-call header
// middleware overrides it (a JSON body is valid YAML, so the apply body needs no conversion).
const APPLY = setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply);

/** isReady tells whether every provisioning step of a namespace has succeeded (READY_LABEL, set last). */
export function isReady(ns: V1Namespace): boolean {
  return ns.metadata?.labels?.[READY_LABEL] === "true";
}

/** podSecurityOf reads the enforced Pod Security level of a namespace ("" when none). */
export function podSecurityOf(ns: V1Namespace): string {
  return ns.metadata?.labels?.[PSA_ENFORCE] ?? "";
}

/** namespaceInfo builds the NamespaceInfo of a namespace and its quota. */
export function namespaceInfo(ns: V1Namespace, rq: V1ResourceQuota | undefined): NamespaceInfo {
  return {
    name: ns.metadata?.name ?? "",
    phase: ns.status?.phase ?? "",
    created: ns.metadata?.creationTimestamp,
    quota: quotaItems(rq),
    ready: isReady(ns),
    podSecurity: podSecurityOf(ns),
  };
}

/**
 * DEFAULT_INGRESS_NAMESPACE_SELECTOR admits the ingress-nginx controller's namespace, the
 * conventional one. kubernetes.io/metadata.name is set by the API server and cannot be
 * changed, and only cluster administrators create namespaces outside the tenant prefix, so
 * no tenant can make its own namespace match. A cluster without that namespace admits nobody.
 */
export const DEFAULT_INGRESS_NAMESPACE_SELECTOR = "kubernetes.io/metadata.name=ingress-nginx";

// Labels every tenant namespace carries (this service sets them): a selector on them would
// admit every tenant into every other tenant's namespace.
const TENANT_LABEL_KEYS = [READY_LABEL, "pod-security.kubernetes.io/"];

/**
 * parseNamespaceSelector reads a label selector in kubectl's syntax (parseLabelSelector) of
 * the namespaces tenant pods admit; "" (or only spaces) means none. It must say what
 * namespaces ARE (one `=`, `==` or `in` at least: a selector of only negations would admit
 * every namespace, tenants included) and may not use labels that tenant namespaces carry
 * (`managedKey`, paas.io/ready, Pod Security). Errors are INVALID_ARGUMENT naming the problem.
 */
export function parseNamespaceSelector(
  raw: string,
  managedKey = "app.kubernetes.io/managed-by",
): LabelSelector | undefined {
  const selector = parseLabelSelector(raw, "namespace selector");
  if (selector === undefined) return undefined;
  const bad = (why: string) => new PaasError("invalid_argument", `namespace selector "${raw.trim()}": ${why}`);
  for (const key of selectorKeys(selector)) {
    if (key === managedKey || TENANT_LABEL_KEYS.some((k) => (k.endsWith("/") ? key.startsWith(k) : key === k))) {
      throw bad(`${key} is a label of tenant namespaces; select the ingress controller's namespace by its own labels`);
    }
  }
  if (!selectsByValue(selector)) throw bad("it must name the namespaces it admits (a key=value or key in (…) term)");
  return selector;
}

/**
 * tenantNetworkPolicy is the namespace's default-deny NetworkPolicy (networkPolicyManifest:
 * same-namespace traffic and DNS) plus, with `ingressFrom`, one ingress rule admitting every
 * pod of the namespaces it selects, on every port: the ingress controller, which reaches a
 * tenant's Services through their pods. Replies need no egress rule (policies are stateful).
 */
export function tenantNetworkPolicy(
  namespace: string,
  labels: Record<string, string>,
  ingressFrom?: LabelSelector,
): Record<string, unknown> {
  const policy = networkPolicyManifest(namespace, labels) as { spec: { ingress: unknown[] } };
  if (ingressFrom) policy.spec.ingress.push({ from: [{ namespaceSelector: ingressFrom }] });
  return policy as unknown as Record<string, unknown>;
}

/** NamespaceOps are the namespace half of KubeClient. */
export interface NamespaceOps {
  ensureNamespace(
    name: string,
    quota: QuotaSpec,
    options?: NamespaceOptions,
  ): Promise<{ created: boolean; namespace: NamespaceInfo }>;
  getNamespace(name: string): Promise<NamespaceInfo>;
  listNamespaces(prefix: string): Promise<NamespaceInfo[]>;
  deleteNamespace(name: string): Promise<void>;
}

/** NamespaceOpsConfig is what createNamespaceOps needs. */
export interface NamespaceOpsConfig {
  kc: KubeConfig;
  api: CoreV1Api;
  managed: ManagedLabel;
  logger: Pick<Logger, "info" | "warn">;
  /** Deadline of one API request. */
  requestTimeoutMs: number;
  /** The ClusterRoles tenant RoleBindings refer to. Default DEFAULT_TENANT_ROLES. */
  roles?: TenantRoles;
  /** Pod Security level of namespaces whose caller asks for none. Default "restricted". */
  podSecurity?: PodSecurityLevel;
  /** How long a new RoleBinding may take to reach the API server's authorizer. Default 15 s. */
  rbacSettleMs?: number;
  /**
   * Label selector (kubectl syntax) of the namespaces whose pods may reach tenant pods, e.g.
   * the ingress controller's. Absent: DEFAULT_INGRESS_NAMESPACE_SELECTOR; "": none.
   */
  ingressNamespaceSelector?: string;
}

/** createNamespaceOps implements the namespace half of KubeClient. */
export function createNamespaceOps(cfg: NamespaceOpsConfig): NamespaceOps {
  const { kc, api, managed, logger } = cfg;
  const roles = cfg.roles ?? DEFAULT_TENANT_ROLES;
  const defaultLevel = cfg.podSecurity ?? "restricted";
  const rbacSettleMs = cfg.rbacSettleMs ?? 15_000;
  const ingressFrom = parseNamespaceSelector(
    cfg.ingressNamespaceSelector ?? DEFAULT_INGRESS_NAMESPACE_SELECTOR,
    managed.key,
  );
  const rbac = createApi(kc, cfg.requestTimeoutMs, RbacAuthorizationV1Api);
  const networking = createApi(kc, cfg.requestTimeoutMs, NetworkingV1Api);
  const authn = createApi(kc, cfg.requestTimeoutMs, AuthenticationV1Api);
  const authz = createApi(kc, cfg.requestTimeoutMs, AuthorizationV1Api);
  const labels = { [managed.key]: managed.value };
  const isManaged = (ns: V1Namespace) => ns.metadata?.labels?.[managed.key] === managed.value;
  // Absent and unmanaged look the same from outside: we never reveal other namespaces.
  const notFound = (name: string) => new PaasError("not_found", `namespace "${name}" not found`);

  // Facts about the cluster that do not change while we run: looked up once, on first use
  // (a failure is not cached).
  let rolesChecked = false;
  let self: Promise<RbacSubject> | undefined;
  let minor: Promise<string> | undefined;

  async function readManaged(name: string): Promise<V1Namespace> {
    assertNamespaceName(name);
    let ns: V1Namespace;
    try {
      ns = await api.readNamespace({ name });
    } catch (err) {
      if (httpCodeOf(err) === 404) throw notFound(name);
      throw kubeError(err, `read namespace "${name}"`);
    }
    if (!isManaged(ns)) throw notFound(name);
    return ns;
  }

  async function readQuota(name: string): Promise<V1ResourceQuota | undefined> {
    try {
      return await api.readNamespacedResourceQuota({ name: QUOTA_NAME, namespace: name });
    } catch (err) {
      if (httpCodeOf(err) === 404) return undefined;
      throw kubeError(err, `read quota of namespace "${name}"`);
    }
  }

  // The ClusterRoles ship in k8s/rbac.yaml; this service never creates cluster-scoped
  // objects. Without them a RoleBinding would be created but grant nothing.
  async function requireClusterRoles(): Promise<void> {
    if (rolesChecked) return;
    for (const name of [roles.deployer, roles.operator]) {
      try {
        await rbac.readClusterRole({ name });
      } catch (err) {
        if (httpCodeOf(err) === 404) {
          throw new PaasError(
            "failed_precondition",
            `ClusterRole ${name} is missing: apply k8s/rbac.yaml (the tenant roles) before creating namespaces`,
            { cause: err },
          );
        }
        throw kubeError(err, `read ClusterRole ${name}`);
      }
    }
    rolesChecked = true;
  }

  // Who we are, as the API server sees it: the subject of the operator's RoleBinding.
  function selfSubject(): Promise<RbacSubject> {
    self ??= authn
      .createSelfSubjectReview({ body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } })
      .then((r) => {
        const user = r.status?.userInfo?.username;
        if (!user)
          throw new PaasError("internal", "the API server did not say who the operator is (SelfSubjectReview)");
        return subjectForUser(user);
      })
      .catch((err: unknown) => {
        self = undefined;
        throw kubeError(err, "identify the operator (SelfSubjectReview)");
      });
    return self;
  }

  function podSecurityVersion(): Promise<string> {
    minor ??= getJson(kc, "/version", AbortSignal.timeout(cfg.requestTimeoutMs)).then(
      (v) => clusterMinor(v as { major?: string; minor?: string }),
      () => {
        minor = undefined;
        return "latest";
      },
    );
    return minor;
  }

  // Server-side apply with force: we are the only writer meant to own these objects;
  // take fields back from any other manager (this is also what repairs a namespace).
  const common = (namespace: string) => ({ namespace, fieldManager: FIELD_MANAGER, force: true });

  async function step<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw kubeError(err, what);
    }
  }

  async function applyNamespaceLabels(name: string, nsLabels: Record<string, string>): Promise<V1Namespace> {
    return step(`label namespace "${name}"`, () =>
      api.patchNamespace(
        { name, body: namespaceApply(name, nsLabels), fieldManager: FIELD_MANAGER, force: true },
        APPLY,
      ),
    );
  }

  // A RoleBinding takes effect once the API server's authorizer has seen it, which is
  // asynchronous: poll SelfSubjectAccessReviews (as the deployer, through impersonation,
  // and as ourselves) until both say yes, so that the first helm run cannot be refused.
  async function waitForRbac(namespace: string): Promise<void> {
    const asDeployer = createApi(impersonating(kc, deployerUser(namespace)), cfg.requestTimeoutMs, AuthorizationV1Api);
    const checks = [
      {
        who: DEPLOYER_SERVICE_ACCOUNT,
        role: roles.deployer,
        client: asDeployer,
        attrs: { verb: "create", group: "apps", resource: "deployments" },
      },
      {
        who: "the operator",
        role: roles.operator,
        client: authz,
        attrs: { verb: "list", group: "", resource: "secrets" },
      },
    ];
    const deadline = Date.now() + rbacSettleMs;
    for (const { who, role, client, attrs } of checks) {
      for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
        const review = await step(`check the permissions of ${who} in namespace "${namespace}"`, () =>
          client.createSelfSubjectAccessReview({
            body: {
              apiVersion: "authorization.k8s.io/v1",
              kind: "SelfSubjectAccessReview",
              spec: { resourceAttributes: { namespace, ...attrs } },
            },
          }),
        );
        if (review.status?.allowed) break;
        if (Date.now() > deadline) {
          throw new PaasError(
            "failed_precondition",
            `the RoleBinding of ${who} in namespace "${namespace}" grants nothing yet: check ClusterRole ${role} (k8s/rbac.yaml)`,
          );
        }
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** provision applies every object of a tenant namespace, in order, then marks it ready. */
  async function provision(
    name: string,
    quota: QuotaSpec,
    level: PodSecurityLevel,
    wasReady: boolean,
    steps?: StepSink,
  ): Promise<{ ns: V1Namespace; rq: V1ResourceQuota }> {
    const nsLabels = { ...labels, ...podSecurityLabels(level, await podSecurityVersion()) };
    // The ready label is kept while a ready namespace is repaired (concurrent installs go
    // on); a namespace that never was ready only becomes so at the very end.
    await applyNamespaceLabels(name, wasReady ? { ...nsLabels, [READY_LABEL]: "true" } : nsLabels);
    steps?.end("namespace", `Pod Security level ${level}`);
    steps?.begin("limit-range");
    await step(`apply LimitRange to namespace "${name}"`, () =>
      api.patchNamespacedLimitRange(
        { ...common(name), name: LIMIT_RANGE_NAME, body: limitRangeManifest(name, quota, labels) },
        APPLY,
      ),
    );
    steps?.end("limit-range");
    steps?.begin("quota", `cpu ${quota.cpu}, memory ${quota.memory}, storage ${quota.storage}`);
    const rq = await step(`apply quota to namespace "${name}"`, () =>
      api.patchNamespacedResourceQuota(
        { ...common(name), name: QUOTA_NAME, body: quotaManifest(name, quota, labels) },
        APPLY,
      ),
    );
    steps?.end("quota");
    steps?.begin("network-policy");
    await step(`apply NetworkPolicy to namespace "${name}"`, () =>
      networking.patchNamespacedNetworkPolicy(
        { ...common(name), name: NETWORK_POLICY_NAME, body: tenantNetworkPolicy(name, labels, ingressFrom) },
        APPLY,
      ),
    );
    steps?.end("network-policy");
    steps?.begin("deployer-identity", `ServiceAccount ${DEPLOYER_SERVICE_ACCOUNT} and its RoleBindings`);
    await step(`apply ServiceAccount ${DEPLOYER_SERVICE_ACCOUNT} to namespace "${name}"`, () =>
      api.patchNamespacedServiceAccount(
        { ...common(name), name: DEPLOYER_SERVICE_ACCOUNT, body: deployerServiceAccountManifest(name, labels) },
        APPLY,
      ),
    );
    const deployer: RbacSubject = { kind: "ServiceAccount", name: DEPLOYER_SERVICE_ACCOUNT, namespace: name };
    await step(`bind ClusterRole ${roles.deployer} in namespace "${name}"`, () =>
      rbac.patchNamespacedRoleBinding(
        {
          ...common(name),
          name: DEPLOYER_BINDING,
          body: roleBindingManifest(name, DEPLOYER_BINDING, roles.deployer, deployer, labels),
        },
        APPLY,
      ),
    );
    const operator = await selfSubject();
    await step(`bind ClusterRole ${roles.operator} in namespace "${name}"`, () =>
      rbac.patchNamespacedRoleBinding(
        {
          ...common(name),
          name: OPERATOR_BINDING,
          body: roleBindingManifest(name, OPERATOR_BINDING, roles.operator, operator, labels),
        },
        APPLY,
      ),
    );
    await waitForRbac(name);
    steps?.end("deployer-identity");
    steps?.begin("ready");
    const ns = await applyNamespaceLabels(name, { ...nsLabels, [READY_LABEL]: "true" });
    steps?.end("ready");
    return { ns, rq };
  }

  return {
    async ensureNamespace(name, quota, options) {
      assertNamespaceName(name);
      validateQuota(quota);
      const level = options?.podSecurity ?? defaultLevel;
      if (!isPodSecurityLevel(level)) {
        throw new PaasError(
          "invalid_argument",
          `pod security level "${level}" must be one of ${POD_SECURITY_LEVELS.join(", ")}`,
        );
      }
      // The ingress allowance must never admit tenants: refuse before anything is created.
      if (ingressFrom && selectorMatches(ingressFrom, { ...labels, "kubernetes.io/metadata.name": name })) {
        throw new PaasError(
          "failed_precondition",
          `the ingress namespace selector (INGRESS_NAMESPACE_SELECTOR) matches the tenant namespace "${name}"; it must select only the ingress controller's namespace`,
        );
      }
      await requireClusterRoles();
      const steps = options?.steps;
      steps?.begin("namespace");
      let ns: V1Namespace;
      let created = false;
      try {
        // Not ready yet: nothing may be installed until provision() has finished.
        ns = await api.createNamespace({ body: { metadata: { name, labels } }, fieldManager: FIELD_MANAGER });
        created = true;
      } catch (err) {
        if (httpCodeOf(err) !== 409) throw kubeError(err, `create namespace "${name}"`);
        try {
          ns = await api.readNamespace({ name });
        } catch (readErr) {
          // Deleted between our create and read: let the caller retry.
          throw kubeError(readErr, `read namespace "${name}"`);
        }
        // Decision: a namespace we did not create is never adopted. It may belong to
        // someone else, and labelling it would hand it to a tenant.
        if (!isManaged(ns)) {
          throw new PaasError("permission_denied", `namespace "${name}" exists and is not managed by this service`);
        }
        if (ns.metadata?.deletionTimestamp || ns.status?.phase === "Terminating") {
          throw new PaasError("failed_precondition", `namespace "${name}" is being deleted; retry when it is gone`);
        }
      }
      // All or nothing: a step that fails leaves the namespace without the ready label, so
      // helm refuses to write into it, and calling ensureNamespace again repairs it.
      let result: { ns: V1Namespace; rq: V1ResourceQuota };
      try {
        result = await provision(name, quota, level, !created && isReady(ns), steps);
      } catch (err) {
        logger.warn(
          { err, namespace: name, created },
          "namespace provisioning failed; it stays not ready until CreateNamespace succeeds",
        );
        throw err;
      }
      if (created) logger.info({ namespace: name, quota, podSecurity: level }, "namespace created");
      return { created, namespace: namespaceInfo(result.ns, result.rq) };
    },

    async getNamespace(name) {
      const ns = await readManaged(name);
      return namespaceInfo(ns, await readQuota(name));
    },

    async listNamespaces(prefix) {
      const selector = `${managed.key}=${managed.value}`;
      try {
        const [nsList, rqList] = await Promise.all([
          api.listNamespace({ labelSelector: selector }),
          // One call for every quota instead of one per namespace.
          api.listResourceQuotaForAllNamespaces({ fieldSelector: `metadata.name=${QUOTA_NAME}` }),
        ]);
        const quotas = new Map(rqList.items.map((rq) => [rq.metadata?.namespace ?? "", rq]));
        return nsList.items
          .filter((ns) => (ns.metadata?.name ?? "").startsWith(prefix) && isManaged(ns))
          .map((ns) => namespaceInfo(ns, quotas.get(ns.metadata?.name ?? "")))
          .sort((a, b) => a.name.localeCompare(b.name));
      } catch (err) {
        throw kubeError(err, "list namespaces");
      }
    },

    async deleteNamespace(name) {
      const ns = await readManaged(name);
      try {
        // The uid precondition makes sure we delete the namespace we checked, not one
        // recreated (perhaps unmanaged) in between.
        await api.deleteNamespace({ name, body: { preconditions: { uid: ns.metadata?.uid } } });
      } catch (err) {
        if (httpCodeOf(err) === 404 || httpCodeOf(err) === 409) throw notFound(name);
        throw kubeError(err, `delete namespace "${name}"`);
      }
      logger.info({ namespace: name }, "namespace deletion requested");
    },
  };
}
