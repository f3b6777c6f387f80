import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { KubeConfig, KubernetesObjectApi, PatchStrategy, type KubernetesObject } from "@kubernetes/client-node";
import { loadAll, YAML11_SCHEMA } from "js-yaml";

// The operator never creates cluster-scoped objects: the two ClusterRoles tenant
// RoleBindings refer to (paas-tenant-deployer, paas-operator-tenant) ship in k8s/rbac.yaml
// and an administrator applies them. On the testbed the tests do, with the cluster-admin
// KUBECONFIG (server-side apply: idempotent, and it brings edits of rbac.yaml along).

const RBAC_FILE = fileURLToPath(new URL("../../k8s/rbac.yaml", import.meta.url));

/** tenantRoleManifests are the ClusterRoles of k8s/rbac.yaml labelled app.kubernetes.io/component=tenant-role. */
export function tenantRoleManifests(): KubernetesObject[] {
  return (loadAll(readFileSync(RBAC_FILE, "utf8"), { schema: YAML11_SCHEMA }) as KubernetesObject[]).filter(
    (o) => o?.kind === "ClusterRole" && o.metadata?.labels?.["app.kubernetes.io/component"] === "tenant-role",
  );
}

let applied: Promise<void> | undefined;

/** ensureTenantRoles applies the tenant ClusterRoles once per test process. */
export function ensureTenantRoles(kubeconfig = process.env.KUBECONFIG): Promise<void> {
  applied ??= (async () => {
    const kc = new KubeConfig();
    if (kubeconfig) kc.loadFromFile(kubeconfig);
    else kc.loadFromDefault();
    const api = KubernetesObjectApi.makeApiClient(kc);
    for (const role of tenantRoleManifests()) {
      await api.patch(role, undefined, undefined, "paas-tests", true, PatchStrategy.ServerSideApply);
    }
  })().catch((err: unknown) => {
    applied = undefined;
    throw err;
  });
  return applied;
}
