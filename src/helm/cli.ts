import { type HelmMajor, historyArgs, installArgs, listArgs, rollbackArgs, uninstallArgs, upgradeArgs, versionArgs } from "./args.ts";
import { chartLabel } from "./chart-source.ts";
import type { ClassifyContext } from "./classify.ts";
import { createHelmHome, type HelmHome, helmEnv, removeHelmHome } from "./env.ts";
import { getRelease } from "./get-release.ts";
import { type HelmVersion, parseRelease, parseVersion } from "./parse.ts";
import { parseHistory, parseList } from "./parse-list.ts";
import { createRunner, type HelmLogger, type HelmRunner } from "./runner.ts";
import type { CommonOptions, HelmClient, ReleaseInfo } from "./types.ts";
import { withValuesFile } from "./values-file.ts";

/** HelmCliOptions configure a helm CLI client. */
export interface HelmCliOptions {
  /** Path of the helm binary (v3 or v4). */
  binary: string;
  logger: HelmLogger;
  /** Used when a call's timeoutSeconds is 0 or less, and for reads. Default 300 (helm's own default). */
  timeoutSeconds?: number;
  /** Explicit variables for every run (KUBECONFIG, HELM_REPOSITORY_CONFIG, …); they win over the private homes. */
  env?: Record<string, string>;
  /** Environment to inherit from, minus HELM_*; defaults to process.env. */
  parentEnv?: NodeJS.ProcessEnv;
  /** Pass --plain-http for every oci:// chart; loopback registries always get it. */
  plainHttp?: boolean;
  /** OCI registries ("host:port" or "host") reached over plain HTTP. */
  plainHttpRegistries?: readonly string[];
  /** Where the private helm home and values files are created; defaults to os.tmpdir(). */
  tmpDir?: string;
  /** Seconds the process runner adds to helm's --timeout before it sends SIGTERM itself. Default 30. */
  graceSeconds?: number;
}

/** HelmCli is a HelmClient backed by the helm binary, plus lifecycle helpers. */
export interface HelmCli extends HelmClient {
  /** The detected major version; detection runs once, on first use. */
  major(): Promise<HelmMajor>;
  /** Deletes the private helm home; the client can still be used (it makes a new one). */
  close(): Promise<void>;
}

interface Ready {
  home: HelmHome;
  run: HelmRunner;
  version: HelmVersion;
}

/** createHelmCli returns a HelmClient that drives the given helm binary, v3 or v4. */
export function createHelmCli(options: HelmCliOptions): HelmCli {
  const defaultTimeout = options.timeoutSeconds && options.timeoutSeconds > 0 ? options.timeoutSeconds : 300;
  const grace = options.graceSeconds ?? 30;
  let ready: Promise<Ready> | undefined;

  // Lazily, once: a private home and the version; a failure is not cached, so a helm
  // binary that appears later (or a transient error) is picked up by the next call.
  const init = (): Promise<Ready> => {
    ready ??= (async () => {
      const home = await createHelmHome(options.tmpDir);
      const env = helmEnv(options.parentEnv ?? process.env, home, options.env);
      const run = createRunner({ binary: options.binary, env, cwd: home.work, logger: options.logger });
      try {
        const out = await run(versionArgs(), { verb: "version", namespace: "", name: "" }, { deadlineSeconds: 30 });
        const version = parseVersion(out);
        options.logger.info({ helm: options.binary, version: version.version }, "helm detected");
        return { home, run, version };
      } catch (err) {
        await removeHelmHome(home);
        throw err;
      }
    })().catch((err: unknown) => {
      ready = undefined;
      throw err;
    });
    return ready;
  };

  const timeoutOf = (o: CommonOptions) => (o.timeoutSeconds > 0 ? o.timeoutSeconds : defaultTimeout);
  const ctxOf = (verb: ClassifyContext["verb"], namespace: string, name: string, chart?: string): ClassifyContext => ({ verb, namespace, name, chart });
  const read = { deadlineSeconds: defaultTimeout + grace };
  const chartOptions = { plainHttp: options.plainHttp ?? false, plainHttpRegistries: options.plainHttpRegistries ?? [] };

  const get = async (namespace: string, name: string): Promise<ReleaseInfo> => getRelease((await init()).run, namespace, name, read);

  // install and upgrade print the new release, chart included; should that output ever be
  // unreadable, the release exists anyway, so it is read back rather than reported as failed.
  const released = async (stdout: string, namespace: string, name: string): Promise<ReleaseInfo> => {
    try {
      return parseRelease(stdout);
    } catch (err) {
      options.logger.warn({ err, namespace, name }, "helm output unreadable; reading the release back");
      return get(namespace, name);
    }
  };

  return {
    async version() {
      return (await init()).version.version;
    },
    async major() {
      return (await init()).version.major;
    },
    async install(o) {
      const { run, version } = await init();
      const timeout = timeoutOf(o);
      const stdout = await withValuesFile(o.values, (valuesFile) => {
        const args = installArgs({ ...o, timeoutSeconds: timeout }, version.major, { valuesFile, ...chartOptions });
        return run(args, ctxOf("install", o.namespace, o.name, chartLabel(o.chart)), { signal: o.signal, deadlineSeconds: timeout + grace });
      }, options.tmpDir);
      return released(stdout, o.namespace, o.name);
    },
    async upgrade(o) {
      const { run, version } = await init();
      const timeout = timeoutOf(o);
      const stdout = await withValuesFile(o.values, (valuesFile) => {
        const args = upgradeArgs({ ...o, timeoutSeconds: timeout }, version.major, { valuesFile, ...chartOptions });
        return run(args, ctxOf("upgrade", o.namespace, o.name, chartLabel(o.chart)), { signal: o.signal, deadlineSeconds: timeout + grace });
      }, options.tmpDir);
      return released(stdout, o.namespace, o.name);
    },
    async rollback(o) {
      const { run, version } = await init();
      const timeout = timeoutOf(o);
      const args = rollbackArgs({ ...o, timeoutSeconds: timeout }, version.major);
      await run(args, ctxOf("rollback", o.namespace, o.name), { signal: o.signal, deadlineSeconds: timeout + grace });
    },
    async uninstall(o) {
      const { run, version } = await init();
      const timeout = timeoutOf(o);
      const args = uninstallArgs({ ...o, timeoutSeconds: timeout }, version.major);
      await run(args, ctxOf("uninstall", o.namespace, o.name), { signal: o.signal, deadlineSeconds: timeout + grace });
    },
    get,
    async history(namespace, name) {
      const { run } = await init();
      return parseHistory(await run(historyArgs(namespace, name), ctxOf("history", namespace, name), read));
    },
    async list(namespace) {
      const { run, version } = await init();
      return parseList(await run(listArgs(namespace, version.major), ctxOf("list", namespace, ""), read));
    },
    async close() {
      const current = ready;
      ready = undefined;
      const done = await current?.catch(() => undefined);
      if (done) await removeHelmHome(done.home);
    },
  };
}
