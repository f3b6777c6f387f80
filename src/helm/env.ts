import { rmSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** HelmHome is a private directory tree that stands in for helm's cache, config and data homes. */
export interface HelmHome {
  root: string;
  cache: string;
  config: string;
  data: string;
  /** An empty working directory: helm resolves a chart argument as a local path first. */
  work: string;
}

/**
 * createHelmHome makes a fresh 0700 directory tree, so that this process never reads the
 * user's ~/.config/helm (repositories, registry logins, plugins) and two clients never
 * share a repository cache.
 */
export async function createHelmHome(parentDir = tmpdir()): Promise<HelmHome> {
  const root = await mkdtemp(join(parentDir, "paas-helm-home-"));
  const home = {
    root,
    cache: join(root, "cache"),
    config: join(root, "config"),
    data: join(root, "data"),
    work: join(root, "work"),
  };
  await Promise.all([home.cache, home.config, home.data, home.work].map((dir) => mkdir(dir, { mode: 0o700 })));
  // A server that exits without closing its client should not leave the tree behind;
  // one process-wide "exit" listener serves every home.
  if (liveHomes.size === 0) process.once("exit", removeLiveHomes);
  liveHomes.add(root);
  return home;
}

const liveHomes = new Set<string>();

function removeLiveHomes(): void {
  for (const root of liveHomes) rmSync(root, { recursive: true, force: true });
  liveHomes.clear();
}

/** removeHelmHome deletes a tree made by createHelmHome. */
export async function removeHelmHome(home: HelmHome): Promise<void> {
  liveHomes.delete(home.root);
  if (liveHomes.size === 0) process.removeListener("exit", removeLiveHomes);
  await rm(home.root, { recursive: true, force: true });
}

/**
 * helmEnv builds the complete environment of a helm run: the parent's environment without
 * any HELM_* variable (a stray HELM_DRIVER, HELM_NAMESPACE or HELM_KUBECONTEXT would
 * silently redirect the operator), then the private homes, then `extra` (explicit
 * configuration such as KUBECONFIG or HELM_REPOSITORY_CONFIG), and finally HELM_DRIVER=secret,
 * which nothing can override because the kube adapter reads releases from those Secrets.
 * Everything else (PATH, HOME, proxies, KUBERNETES_SERVICE_*, cloud credentials used by
 * kubeconfig exec plugins) passes through.
 */
export function helmEnv(
  parent: NodeJS.ProcessEnv,
  home: HelmHome,
  extra: Record<string, string> = {},
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(parent)) {
    if (value !== undefined && !key.toUpperCase().startsWith("HELM_")) env[key] = value;
  }
  env.HELM_CACHE_HOME = home.cache;
  env.HELM_CONFIG_HOME = home.config;
  env.HELM_DATA_HOME = home.data;
  // Colour codes would only garble stderr in the log.
  env.NO_COLOR = "1";
  Object.assign(env, extra);
  env.HELM_DRIVER = "secret";
  return env;
}

/**
 * withRunHome gives one helm run its own fresh HELM_CACHE_HOME, HELM_CONFIG_HOME and
 * HELM_DATA_HOME (0700, removed afterwards), so that runs for different tenants never share a
 * repository index, a pulled chart or registry state. Plugins still come from the client's
 * home (`plugins`: only the render guard is ever installed there). `charts` is an empty 0700
 * directory of the same tree, where the run's chart is pulled to.
 */
export async function withRunHome<T>(
  parentDir: string | undefined,
  plugins: string,
  fn: (env: Record<string, string>, charts: string) => Promise<T>,
): Promise<T> {
  const root = await mkdtemp(join(parentDir ?? tmpdir(), "paas-helm-run-"));
  try {
    const dirs = {
      HELM_CACHE_HOME: join(root, "cache"),
      HELM_CONFIG_HOME: join(root, "config"),
      HELM_DATA_HOME: join(root, "data"),
    };
    const charts = join(root, "charts");
    await Promise.all([...Object.values(dirs), charts].map((dir) => mkdir(dir, { mode: 0o700 })));
    return await fn({ ...dirs, HELM_PLUGINS: plugins }, charts);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
