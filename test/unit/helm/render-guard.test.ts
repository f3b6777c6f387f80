import { describe, expect, it } from "vitest";
import {
  describeFinding,
  describeRefusal,
  type GuardPolicy,
  guardManifests,
  splitDocuments,
} from "../../../src/helm/render-guard.ts";
import { DROPPED, RESERVED } from "../../../src/kube/tenancy/kube-tenant-access.ts";

// The render guard's verdicts on rendered streams, as helm v3 (with "# Source:" comments)
// and v4 (with postrender-filename annotations) hand them to the post-renderer.

const SCOPES: Record<string, boolean> = {
  "v1/ConfigMap": true,
  "v1/Secret": true,
  "v1/Service": true,
  "v1/ServiceAccount": true,
  "v1/Pod": true,
  "v1/ResourceQuota": true,
  "v1/LimitRange": true,
  "v1/Namespace": false,
  "v1/PersistentVolume": false,
  "apps/v1/Deployment": true,
  "apps/v1/DaemonSet": true,
  "batch/v1/Job": true,
  "batch/v1/CronJob": true,
  "networking.k8s.io/v1/NetworkPolicy": true,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": false,
  "rbac.authorization.k8s.io/v1/ClusterRole": false,
  "rbac.authorization.k8s.io/v1/RoleBinding": true,
  "apiextensions.k8s.io/v1/CustomResourceDefinition": false,
  "admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration": false,
};

const policy = (over: Partial<GuardPolicy> = {}): GuardPolicy => ({
  namespace: "paas-ws-a",
  scopes: SCOPES,
  podSecurity: "restricted",
  reserved: RESERVED,
  drop: DROPPED,
  ...over,
});

const v3doc = (source: string, body: string) => `---\n# Source: chart/templates/${source}\n${body.trim()}\n`;

const configMap = (name: string, ns?: string) =>
  `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n${ns !== undefined ? `  namespace: ${ns}\n` : ""}data:\n  k: v`;

const compliantPod = `
apiVersion: v1
kind: Pod
metadata:
  name: ok
spec:
  securityContext:
    runAsNonRoot: true
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: c
      image: busybox
      securityContext:
        allowPrivilegeEscalation: false
        capabilities: {drop: [ALL]}
`;

describe("guardManifests", () => {
  it("passes an ordinary chart through byte for byte", () => {
    const stream =
      v3doc("cm.yaml", configMap("a")) +
      v3doc("cm2.yaml", configMap("b", "paas-ws-a")) +
      v3doc("pod.yaml", compliantPod);
    const r = guardManifests(stream, policy());
    expect(r.refused).toEqual([]);
    expect(r.dropped).toEqual([]);
    expect(r.output).toBe(stream);
  });

  it("refuses cluster-scoped kinds, naming the object (discovery decides, not a list)", () => {
    const crb = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: pwn}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: default, namespace: paas-ws-a}]`;
    const r = guardManifests(v3doc("cm.yaml", configMap("a")) + v3doc("crb.yaml", crb), policy());
    expect(r.refused).toHaveLength(1);
    expect(r.refused[0]).toMatchObject({ kind: "ClusterRoleBinding", name: "pwn" });
    expect(describeRefusal(r.refused)).toBe(
      'ClusterRoleBinding "pwn": ClusterRoleBinding is cluster-scoped: a release may only create objects in its own namespace "paas-ws-a"',
    );
    // The same kind, declared namespaced by discovery (a CRD of that name), would pass.
    expect(
      guardManifests(crb, policy({ scopes: { ...SCOPES, "rbac.authorization.k8s.io/v1/ClusterRoleBinding": true } }))
        .refused,
    ).toEqual([]);
  });

  it("refuses objects in another namespace, kube-system included", () => {
    const r = guardManifests(
      v3doc("a.yaml", configMap("x", "kube-system")) + v3doc("b.yaml", configMap("yy", "paas-ws-b")),
      policy(),
    );
    expect(r.refused.map(describeFinding)).toEqual([
      'ConfigMap "x" in namespace "kube-system": it is in namespace "kube-system": a release may only create objects in its own namespace "paas-ws-a"',
      'ConfigMap "yy" in namespace "paas-ws-b": it is in namespace "paas-ws-b": a release may only create objects in its own namespace "paas-ws-a"',
    ]);
    expect(describeRefusal(r.refused)).toMatch(/\(and 1 more object\)$/);
  });

  it("refuses CRDs, Namespaces and kinds the cluster does not serve", () => {
    const crd =
      "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}";
    const ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: paas-ws-a, labels: {paas.io/ready: 'true'}}";
    const cr = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}";
    const r = guardManifests([crd, ns, cr].map((d, i) => v3doc(`${i}.yaml`, d)).join(""), policy());
    expect(r.refused.map((f) => [f.kind, f.reason])).toEqual([
      ["CustomResourceDefinition", expect.stringContaining("the platform installs them")],
      ["Namespace", expect.stringContaining("Namespace is cluster-scoped")],
      [
        "Widget",
        "the cluster does not serve kind Widget in example.com/v1 (is its CustomResourceDefinition installed?)",
      ],
    ]);
    expect(r.unknownKind).toBe(true);
  });

  it("checks hooks too (helm v4 hands them to the post-renderer) and names them", () => {
    const hook = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: hooked
  annotations:
    "helm.sh/hook": pre-install
    postrenderer.helm.sh/postrender-filename: 'chart/templates/hook.yaml'
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}`;
    const r = guardManifests(`---\n${hook}\n`, policy());
    expect(describeFinding(r.refused[0]!)).toMatch(/^ClusterRoleBinding "hooked" \(pre-install hook\): /);
  });

  it("looks into kind List, which helm flattens", () => {
    const list = `apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: fine}
  - apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRole
    metadata: {name: hidden}`;
    const r = guardManifests(list, policy());
    expect(r.refused.map((f) => `${f.kind}/${f.name}`)).toEqual(["ClusterRole/hidden"]);
  });

  it("drops NetworkPolicies (tenants get no NetworkPolicy rights) and keeps the rest verbatim", () => {
    const np =
      "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db}\nspec: {podSelector: {}, egress: [{}]}";
    const keep = v3doc("cm.yaml", configMap("a"));
    const r = guardManifests(keep + v3doc("np.yaml", np), policy());
    expect(r.refused).toEqual([]);
    expect(r.dropped).toEqual([
      { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", name: "db", namespace: "" },
    ]);
    expect(r.output).toBe(keep);
    // Only the NetworkPolicy: the output is a comment, never empty (helm v4 refuses empty output).
    const only = guardManifests(v3doc("np.yaml", np), policy());
    expect(only.output).toBe("# paas-render-guard: no objects\n");
    expect(guardManifests("", policy()).output).toBe("# paas-render-guard: no objects\n");
  });

  it("refuses the objects the platform manages in every tenant namespace", () => {
    const rb =
      "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: paas-deployer}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}";
    const rq = "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: paas-quota}\nspec: {hard: {pods: '1000'}}";
    const r = guardManifests(`---\n${rb}\n---\n${rq}\n`, policy());
    expect(r.refused.map((f) => f.reason)).toEqual([
      'RoleBinding "paas-deployer" is managed by the platform in every tenant namespace',
      'ResourceQuota "paas-quota" is managed by the platform in every tenant namespace',
    ]);
  });

  it("refuses pod templates that Pod Security would refuse, but not test hooks", () => {
    const privileged = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      hostNetwork: true
      containers: [{name: c, image: x, securityContext: {privileged: true}}]`;
    const r = guardManifests(privileged, policy({ podSecurity: "baseline" }));
    expect(describeFinding(r.refused[0]!)).toBe(
      'Deployment "web": its pods violate the namespace\'s Pod Security level "baseline": hostNetwork=true (host namespaces); container "c": securityContext.privileged=true',
    );
    const testHook = `apiVersion: v1
kind: Pod
metadata: {name: t, annotations: {"helm.sh/hook": test}}
spec: {containers: [{name: c, image: x}]}`;
    expect(guardManifests(testHook, policy()).refused).toEqual([]);
    expect(guardManifests(testHook.replace("test", "pre-install"), policy()).refused).toHaveLength(1);
    // No level, or privileged: nothing is checked.
    expect(guardManifests(privileged, policy({ podSecurity: "" })).refused).toEqual([]);
  });

  it("reads YAML the way helm (YAML 1.1) does: 'yes' is true", () => {
    const pod =
      "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {hostPID: yes, containers: [{name: c, image: x}]}";
    expect(guardManifests(pod, policy({ podSecurity: "baseline" })).refused[0]?.reason).toContain("hostPID=true");
  });

  it("fails closed on what it cannot read one object per document", () => {
    expect(guardManifests("a: [\n", policy()).refused[0]?.reason).toBe("the rendered manifests are not valid YAML");
    // A duplicated key could be read differently by helm.
    expect(
      guardManifests(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: paas-ws-a, namespace: kube-system}",
        policy(),
      ).refused,
    ).toHaveLength(1);
    // Two documents in one chunk ("..." ends a document without a new marker).
    expect(
      guardManifests(`${configMap("a")}\n...\n${configMap("b", "kube-system")}\n`, policy()).refused[0]?.reason,
    ).toContain("without its own --- marker");
    expect(guardManifests("- 1\n- 2\n", policy()).refused[0]?.reason).toBe(
      "a rendered document is not a Kubernetes object",
    );
    expect(guardManifests("kind: ConfigMap\nmetadata: {name: a}", policy()).refused[0]?.reason).toBe(
      "it has no apiVersion or kind",
    );
    expect(
      guardManifests("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: [x]}", policy()).refused[0]
        ?.reason,
    ).toContain("not a string");
  });

  it("keeps messages printable and short", () => {
    const r = guardManifests(
      `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: "a\\u0007${"x".repeat(300)}", namespace: other}`,
      policy(),
    );
    const msg = describeFinding(r.refused[0]!);
    expect(msg).not.toMatch(/\u0007/);
    expect(msg.length).toBeLessThan(400);
  });
});

describe("splitDocuments", () => {
  it("cuts before --- markers only (not ---x, not indented)", () => {
    expect(splitDocuments("a: 1\n---\nb: 2\n--- \nc: 3\n---x: 4\n  ---\n")).toEqual([
      "a: 1\n",
      "---\nb: 2\n",
      "--- \nc: 3\n---x: 4\n  ---\n",
    ]);
  });
});
