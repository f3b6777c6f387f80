import { KubeConfig } from "@kubernetes/client-node";

/**
 * impersonating returns a copy of `kc` whose requests carry Impersonate-User: `user`. For a
 * ServiceAccount user name (system:serviceaccount:<ns>:<name>) and no Impersonate-Group,
 * the API server adds the account's groups itself (system:serviceaccounts,
 * system:serviceaccounts:<ns>, system:authenticated), so the caller needs `impersonate`
 * on that one ServiceAccount and nothing on groups.
 */
export function impersonating(kc: KubeConfig, user: string): KubeConfig {
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
