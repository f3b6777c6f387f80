import { isAbsolute } from "node:path";
import { PaasError } from "../errors.ts";
import { chartArgs, type ChartArgOptions } from "./chart-source.ts";
import { assertArg, assertTimeout } from "./assert-arg.ts";
import type { CommonOptions, InstallOptions, RollbackOptions, UpgradeOptions } from "./helm-client.ts";
import type { ChartSource } from "../domain/release.ts";

/** HelmMajor is the major version of the helm binary; flags differ between 3 and 4. */
export type HelmMajor = 3 | 4;

/** WriteContext carries what install and upgrade need beyond their options. */
export interface WriteContext extends ChartArgOptions {
  /** Path of the private JSON file holding the user-supplied values. */
  valuesFile: string;
  /**
   * The chart archive the server pulled for this run (pullArgs): when set, helm installs
   * this file instead of resolving the chart source again. Only ever a path the server
   * chose, in a private directory; a caller's reference never becomes a local path.
   */
  archive?: string;
}

/**
 * LIST_TIME_FORMAT is Go's RFC 3339 layout with nanoseconds; without it `helm list`
 * prints time.Time.String(), which is not meant to be parsed.
 */
export const LIST_TIME_FORMAT = "2006-01-02T15:04:05.999999999Z07:00";

/** versionArgs prints only the version string ("v4.3.1"); --template exists in v3 and v4. */
export function versionArgs(): string[] {
  return ["version", "--template", "{{.Version}}"];
}

/**
 * pullArgs builds `helm pull CHART [--version RANGE] --destination DIR`: the chart source
 * resolved and downloaded, as install would, into a private directory. For oci:// charts
 * helm prints "Pulled: host/path:tag" and "Digest: sha256:…" (stdout in v4, stderr in v3).
 */
export function pullArgs(source: ChartSource, destination: string, options: ChartArgOptions): string[] {
  return ["pull", ...chartArgs(source, options), "--destination", assertArg("pull destination", destination)];
}

/** installArgs builds `helm install NAME CHART …` with JSON output. */
export function installArgs(o: InstallOptions, _major: HelmMajor, ctx: WriteContext): string[] {
  const args = ["install", assertArg("release name", o.name), ...chartPositional(o.chart, ctx)];
  args.push(...scope(o.namespace), ...writeFlags(o, ctx));
  if (o.createNamespace) args.push("--create-namespace");
  // `--wait` alone is a bool in v3 and means "watcher" in v4 (a string flag with NoOptDefVal);
  // `--wait=true` would work too but v4 logs a deprecation warning for it.
  if (o.wait) args.push("--wait");
  return args;
}

/**
 * upgradeArgs builds `helm upgrade NAME CHART …` (never --install: a missing release must
 * surface as an error). Values: resetValues wins and sends --reset-values; else
 * reuseValues sends --reset-then-reuse-values (v3.14+, v4), which keeps the previous
 * user values but takes the new chart's defaults, where plain --reuse-values would
 * freeze the old chart's defaults too; neither sends nothing, and then helm itself
 * reuses the old values only when the new ones are empty.
 */
export function upgradeArgs(o: UpgradeOptions, _major: HelmMajor, ctx: WriteContext): string[] {
  const args = ["upgrade", assertArg("release name", o.name), ...chartPositional(o.chart, ctx)];
  args.push(...scope(o.namespace), ...writeFlags(o, ctx));
  if (o.resetValues) args.push("--reset-values");
  else if (o.reuseValues) args.push("--reset-then-reuse-values");
  if (o.wait) args.push("--wait");
  return args;
}

/** rollbackArgs builds `helm rollback NAME [REVISION]`; revision 0 means the previous one. */
export function rollbackArgs(o: RollbackOptions, _major: HelmMajor): string[] {
  if (!Number.isInteger(o.revision) || o.revision < 0) {
    throw new PaasError("invalid_argument", "revision must be a non-negative integer");
  }
  const args = ["rollback", assertArg("release name", o.name)];
  if (o.revision > 0) args.push(String(o.revision));
  args.push(...scope(o.namespace), "--timeout", `${assertTimeout(o.timeoutSeconds)}s`);
  if (o.wait) args.push("--wait");
  return args;
}

/** uninstallArgs builds `helm uninstall NAME` (history is purged, as helm does by default). */
export function uninstallArgs(o: CommonOptions, _major: HelmMajor): string[] {
  return [
    "uninstall",
    assertArg("release name", o.name),
    ...scope(o.namespace),
    "--timeout",
    `${assertTimeout(o.timeoutSeconds)}s`,
  ];
}

/** statusArgs builds `helm status NAME -o json`: info, notes and user values, but no chart. */
export function statusArgs(namespace: string, name: string, revision?: number): string[] {
  const args = ["status", assertArg("release name", name), ...scope(namespace), "--output", "json"];
  if (revision !== undefined && revision > 0) args.push("--revision", String(revision));
  return args;
}

/** metadataArgs builds `helm get metadata NAME -o json`: chart name, version and app version. */
export function metadataArgs(namespace: string, name: string): string[] {
  return ["get", "metadata", assertArg("release name", name), ...scope(namespace), "--output", "json"];
}

/** historyArgs builds `helm history NAME -o json` (helm keeps its default of 256 entries). */
export function historyArgs(namespace: string, name: string): string[] {
  return ["history", assertArg("release name", name), ...scope(namespace), "--output", "json"];
}

/**
 * listArgs builds `helm list -o json` over every status: v3 lists only deployed and
 * failed releases unless given --all, while v4 lists everything by default and no
 * longer has --all.
 */
export function listArgs(namespace: string, major: HelmMajor): string[] {
  const args = ["list", ...scope(namespace), "--output", "json", "--time-format", LIST_TIME_FORMAT];
  if (major === 3) args.push("--all");
  return args;
}

/**
 * impersonationArgs makes every API request of the run carry Impersonate-User: `user`
 * (--kube-as-user, a global flag of v3 and v4). No --kube-as-group: for a ServiceAccount
 * user the API server adds its groups itself, and asking for groups would need the right
 * to impersonate them.
 */
export function impersonationArgs(user: string | undefined): string[] {
  return user ? ["--kube-as-user", assertArg("impersonated user", user)] : [];
}

/**
 * renderGuardArgs are added to install and upgrade in tenant namespaces: the chart's
 * crds/ directory is never installed (--skip-crds: CRDs are cluster-wide, the platform
 * installs them), then the post-renderer flags of the render guard.
 */
export function renderGuardArgs(postRendererFlags: readonly string[]): string[] {
  return ["--skip-crds", ...postRendererFlags];
}

// The pulled archive (no --version, --repo or --plain-http: nothing is resolved again), or the source.
function chartPositional(source: ChartSource, ctx: WriteContext): string[] {
  if (ctx.archive === undefined) return chartArgs(source, ctx);
  if (!isAbsolute(ctx.archive)) throw new PaasError("internal", "the pulled chart archive has an unexpected path");
  return [assertArg("chart archive", ctx.archive)];
}

function scope(namespace: string): string[] {
  return ["--namespace", assertArg("namespace", namespace)];
}

// Flags shared by install and upgrade: JSON output, timeout, values file, labels.
function writeFlags(o: InstallOptions | UpgradeOptions, ctx: WriteContext): string[] {
  const flags = ["--output", "json", "--timeout", `${assertTimeout(o.timeoutSeconds)}s`, "--values", ctx.valuesFile];
  const labels = labelsFlag(o.labels);
  if (labels) flags.push("--labels", labels);
  return flags;
}

// pflag parses --labels as CSV of k=v pairs, so commas, quotes and "=" in a key would
// change its meaning; valid Kubernetes label keys and values contain none of them.
function labelsFlag(labels: Record<string, string>): string | undefined {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return undefined;
  return keys
    .map((key) => {
      const value = labels[key] ?? "";
      if (key === "" || /[,="\s]/.test(key) || /[,="\s]/.test(value)) {
        throw new PaasError("invalid_argument", `release label ${JSON.stringify(key)} is not a valid label`);
      }
      return `${key}=${value}`;
    })
    .join(",");
}
