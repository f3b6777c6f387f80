import { join } from "node:path";
import { PaasError } from "../errors.ts";
import { resolvedChartLabels } from "./chart-labels.ts";
import {
  type HelmMajor,
  historyArgs,
  impersonationArgs,
  installArgs,
  listArgs,
  renderGuardArgs,
  rollbackArgs,
  statusArgs,
  uninstallArgs,
  upgradeArgs,
  versionArgs,
  type WriteContext,
} from "./args.ts";
import { chartLabel } from "./chart-source.ts";
import type { ClassifyContext } from "./helm-errors.ts";
import { createHelmHome, type HelmHome, helmEnv, removeHelmHome, withRunHome } from "./env.ts";
import { getRelease } from "./get-release.ts";
import { type HelmVersion, parseRelease, parseVersion } from "./parse.ts";
import { parseHistory, parseList } from "./parse-list.ts";
import { installRenderGuard, withRenderGuard } from "./post-renderer.ts";
import { pullChart } from "./pull.ts";
import type { GuardPolicy } from "./render-guard.ts";
import { createRunner, type HelmLogger, type HelmRunner } from "./runner.ts";
import type { TenantAccess } from "./tenant-access.ts";
import type { CommonOptions, HelmClient, HelmSteps, InstallOptions, UpgradeOptions } from "./helm-client.ts";
import type { ReleaseInfo } from "../domain/release.ts";
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
  /**
   * Run helm as the tenant: every run in a namespace impersonates tenant.userFor(namespace),
   * writes need tenant.prepareWrite to pass, and install and upgrade skip crds/ and go
   * through the render guard (post-renderer). Without it helm runs with the operator's
   * own identity and nothing is checked (tests of the plain CLI adapter).
   */
  tenant?: TenantAccess;
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
  /** --post-renderer value of the render guard (tenant mode only). */
  guard?: string;
}

// Install failures that leave a release record "failed" at revision 1 because the cluster
// refused an object (RBAC, Pod Security, quota, validation): the release is uninstalled so
// that nothing half-applied stays behind. Timeouts keep their failed release (its pods
// are worth looking at); the render guard refuses before any record exists.
const CLEANUP_KINDS = new Set(["permission_denied", "failed_precondition", "invalid_argument", "resource_exhausted"]);

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
      const base = createRunner({ binary: options.binary, env, cwd: home.work, logger: options.logger });
      const tenant = options.tenant;
      // In tenant mode every run about a namespace impersonates that namespace's deployer.
      const run: HelmRunner = tenant
        ? (args, ctx, o) =>
            base(ctx.namespace ? [...args, ...impersonationArgs(tenant.userFor(ctx.namespace))] : args, ctx, o)
        : base;
      try {
        const out = await run(versionArgs(), { verb: "version", namespace: "", name: "" }, { deadlineSeconds: 30 });
        const version = parseVersion(out);
        const guard = tenant ? await installRenderGuard(home, version.major) : undefined;
        options.logger.info({ helm: options.binary, version: version.version, tenantMode: !!tenant }, "helm detected");
        return { home, run, version, guard };
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
  const ctxOf = (verb: ClassifyContext["verb"], namespace: string, name: string, chart?: string): ClassifyContext => ({
    verb,
    namespace,
    name,
    chart,
  });
  const read = { deadlineSeconds: defaultTimeout + grace };
  const chartOptions = {
    plainHttp: options.plainHttp ?? false,
    plainHttpRegistries: options.plainHttpRegistries ?? [],
  };

  const get = async (namespace: string, name: string): Promise<ReleaseInfo> =>
    getRelease((await init()).run, namespace, name, read);

  // Tenant mode: the namespace must be ready before helm writes into it.
  const prepare = (namespace: string): Promise<GuardPolicy | undefined> =>
    options.tenant ? options.tenant.prepareWrite(namespace) : Promise.resolve(undefined);

  // install and upgrade: in tenant mode with --skip-crds and the render guard.
  const guarded = async (
    ready: Ready,
    policy: GuardPolicy | undefined,
    ctx: ClassifyContext,
    fn: (extra: string[]) => Promise<string>,
    steps: HelmSteps | undefined,
  ): Promise<string> => {
    if (!policy || !ready.guard) {
      steps?.begin("apply");
      return fn([]);
    }
    steps?.begin("render-guard", "helm renders the chart; the guard checks every object before anything is applied");
    const { value, report } = await withRenderGuard(policy, ready.guard, (flags) => fn(renderGuardArgs(flags)), {
      parentDir: options.tmpDir,
      onUnknownKind: () => options.tenant?.refreshDiscovery(),
      onVerdict: (r) => {
        if (r.refused.length > 0) return;
        steps?.end(
          "render-guard",
          r.dropped.length > 0 ? `passed; dropped ${r.dropped.map((o) => `${o.kind}/${o.name}`).join(", ")}` : "passed",
        );
        steps?.begin("apply");
      },
    });
    if (report && report.dropped.length > 0) {
      options.logger.info(
        { namespace: ctx.namespace, release: ctx.name, dropped: report.dropped.map((o) => `${o.kind}/${o.name}`) },
        "render guard dropped objects the platform manages (the namespace's own NetworkPolicy applies)",
      );
    }
    return value;
  };

  // install and upgrade fetch charts: each gets a fresh helm home (no cache shared between tenants).
  const fetchingRun = <T>(ready: Ready, fn: (env: Record<string, string>, charts: string) => Promise<T>): Promise<T> =>
    withRunHome(options.tmpDir, join(ready.home.data, "plugins"), fn);

  // install and upgrade: inside one fresh helm home, `helm pull` resolves the chart source
  // (version ranges included) into a private directory, then helm installs that very
  // archive, so the version and digest recorded in the release labels are those of what
  // was installed (no second resolution, which a moving tag or a new chart version in a
  // range could make different). The response carries the digest; reads get it from the
  // labels (src/helm/chart-labels.ts).
  const write = async <O extends InstallOptions | UpgradeOptions>(
    ready: Ready,
    verb: "install" | "upgrade",
    o: O,
    policy: GuardPolicy | undefined,
    build: (o: O, ctx: WriteContext) => string[],
  ): Promise<ReleaseInfo> => {
    const timeout = timeoutOf(o);
    const ctx = ctxOf(verb, o.namespace, o.name, chartLabel(o.chart));
    const runOptions = { signal: o.signal, deadlineSeconds: timeout + grace };
    const { stdout, pulled } = await withValuesFile(
      o.values,
      (valuesFile) =>
        fetchingRun(ready, async (env, charts) => {
          o.steps?.begin("pull");
          const pulled = await pullChart(ready.run, ctx, o.chart, chartOptions, charts, { ...runOptions, env });
          // Tenant mode installs with --skip-crds: a chart that ships CRDs would install without
          // them and be broken. Refused before helm installs anything.
          if (policy && ready.guard && pulled.crds) throw chartHasCrds(ctx, pulled.crds);
          o.steps?.end("pull", `${pulled.name} ${pulled.version}${pulled.digest ? ` ${pulled.digest}` : ""}`);
          if (o.chart.ref.trim().startsWith("oci://") && !pulled.digest) {
            options.logger.warn(
              { namespace: o.namespace, release: o.name, chart: ctx.chart },
              "helm pull reported no digest for an OCI chart; none is recorded",
            );
          }
          const labels = { ...o.labels, ...resolvedChartLabels(pulled) };
          const stdout = await guarded(
            ready,
            policy,
            ctx,
            (extra) => {
              const args = [
                ...build(
                  { ...o, labels, timeoutSeconds: timeout },
                  { valuesFile, archive: pulled.archive, ...chartOptions },
                ),
                ...extra,
              ];
              return ready.run(args, ctx, { ...runOptions, env });
            },
            o.steps,
          );
          o.steps?.end("apply");
          return { stdout, pulled };
        }),
      options.tmpDir,
    );
    const info = await released(stdout, o.namespace, o.name);
    if (info.chartVersion && info.chartVersion !== pulled.version) {
      // Only a malformed archive (two Chart.yaml files) could get here; the labels are then wrong.
      options.logger.error(
        { namespace: o.namespace, release: o.name, recorded: pulled.version, installed: info.chartVersion },
        "the chart version recorded in the release labels is not the one helm installed",
      );
    }
    return pulled.digest ? { ...info, chartDigest: pulled.digest } : info;
  };

  // After a refused install: uninstall the release if it is the failed first revision.
  const cleanupFailedInstall = async (
    run: HelmRunner,
    major: HelmMajor,
    o: CommonOptions,
    err: unknown,
  ): Promise<void> => {
    if (!options.tenant || !(err instanceof PaasError) || !CLEANUP_KINDS.has(err.kind)) return;
    try {
      const status = parseRelease(
        await run(statusArgs(o.namespace, o.name), ctxOf("status", o.namespace, o.name), read),
      );
      if (status.status !== "failed" || status.revision !== 1) return;
      const args = uninstallArgs({ ...o, timeoutSeconds: timeoutOf(o) }, major);
      await run(args, ctxOf("uninstall", o.namespace, o.name), { deadlineSeconds: timeoutOf(o) + grace });
      options.logger.info(
        { namespace: o.namespace, release: o.name, reason: err.kind },
        "refused install uninstalled: nothing of it stays in the cluster",
      );
    } catch (cleanupErr) {
      if (cleanupErr instanceof PaasError && cleanupErr.kind === "not_found") return;
      options.logger.warn(
        { err: cleanupErr, namespace: o.namespace, release: o.name },
        "could not uninstall the refused install; it stays as a failed release",
      );
    }
  };

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
      const ready = await init();
      const policy = await prepare(o.namespace);
      try {
        return await write(ready, "install", o, policy, (args, ctx) => installArgs(args, ready.version.major, ctx));
      } catch (err) {
        await cleanupFailedInstall(ready.run, ready.version.major, o, err);
        throw err;
      }
    },
    async upgrade(o) {
      const ready = await init();
      const policy = await prepare(o.namespace);
      return write(ready, "upgrade", o, policy, (args, ctx) => upgradeArgs(args, ready.version.major, ctx));
    },
    async rollback(o) {
      const { run, version } = await init();
      await prepare(o.namespace);
      const timeout = timeoutOf(o);
      const args = rollbackArgs({ ...o, timeoutSeconds: timeout }, version.major);
      o.steps?.begin("apply");
      await run(args, ctxOf("rollback", o.namespace, o.name), { signal: o.signal, deadlineSeconds: timeout + grace });
      o.steps?.end("apply");
    },
    async uninstall(o) {
      const { run, version } = await init();
      await prepare(o.namespace);
      const timeout = timeoutOf(o);
      const args = uninstallArgs({ ...o, timeoutSeconds: timeout }, version.major);
      o.steps?.begin("apply");
      await run(args, ctxOf("uninstall", o.namespace, o.name), { signal: o.signal, deadlineSeconds: timeout + grace });
      o.steps?.end("apply");
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

/** chartHasCrds refuses a chart that ships CustomResourceDefinitions (crds/ of it or of a subchart), naming them. */
function chartHasCrds(ctx: ClassifyContext, crds: string[]): PaasError {
  const shown = crds.slice(0, 10).join("; ") + (crds.length > 10 ? `; and ${crds.length - 10} more` : "");
  return new PaasError(
    "failed_precondition",
    `${`Chart ${ctx.chart ?? ""}`.trim()} ships CustomResourceDefinitions, which a tenant cannot install (they are cluster-wide: the platform installs them): ${shown}`,
    { reason: "CHART_HAS_CRDS" },
  );
}
