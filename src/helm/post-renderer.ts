import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PaasError } from "../errors.ts";
import type { HelmMajor } from "./args.ts";
import type { HelmHome } from "./env.ts";
import { describeRefusal, type GuardFinding, type GuardObject, type GuardPolicy } from "./render-guard.ts";

// How the render guard is hooked into helm, which differs between majors:
//  - helm v3 runs an executable: --post-renderer <path> --post-renderer-args <arg>; it sees
//    the manifests only, never the hooks (v3 post-renders after splitting hooks off);
//  - helm v4 only runs post-renderer *plugins* (type postrenderer/v1) found in
//    $HELM_DATA_HOME/plugins: --post-renderer <plugin name>. By default (strategy
//    "combined") v4 passes hooks and manifests together, so hooks are checked too.
// Both get the same small shell script, which runs render-guard-main.ts with this node.
// It lives in the client's private helm home, which nobody else can write to.

/** GUARD_NAME is the plugin's (v4) and script's (v3) name. */
export const GUARD_NAME = "paas-render-guard";

const MAIN = fileURLToPath(new URL("./render-guard-main.ts", import.meta.url));

function shQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * guardScript is the executable helm starts: this node running render-guard-main.ts. With
 * a compile cache (NODE_COMPILE_CACHE, in the private home) a run costs about 60 ms
 * instead of 140 ms: helm waits for it on every install and upgrade.
 */
export function guardScript(node = process.execPath, main = MAIN, compileCache?: string): string {
  const cache = compileCache ? `NODE_COMPILE_CACHE=${shQuote(compileCache)}\nexport NODE_COMPILE_CACHE\n` : "";
  return `#!/bin/sh\n${cache}exec ${shQuote(node)} ${shQuote(main)} "$@"\n`;
}

/**
 * installRenderGuard puts the guard into a private helm home and returns the value of
 * --post-renderer for that major: the script's path (v3) or the plugin's name (v4).
 */
export async function installRenderGuard(home: HelmHome, major: HelmMajor, node = process.execPath): Promise<string> {
  const content = guardScript(node, MAIN, join(home.root, "node-compile-cache"));
  if (major === 3) {
    const dir = join(home.root, "bin");
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const script = join(dir, GUARD_NAME);
    await writeFile(script, content, { mode: 0o700 });
    await chmod(script, 0o700);
    return script;
  }
  const dir = join(home.data, "plugins", GUARD_NAME);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // plugin.yaml in JSON (valid YAML). The command is split on spaces by helm before
  // ${HELM_PLUGIN_DIR} is expanded, so a home path with spaces is fine.
  const plugin = {
    apiVersion: "v1",
    name: GUARD_NAME,
    version: "1.0.0",
    type: "postrenderer/v1",
    runtime: "subprocess",
    runtimeConfig: { platformCommand: [{ command: `\${HELM_PLUGIN_DIR}/${GUARD_NAME}` }] },
  };
  await writeFile(join(dir, "plugin.yaml"), `${JSON.stringify(plugin, null, 2)}\n`, { mode: 0o600 });
  const script = join(dir, GUARD_NAME);
  await writeFile(script, content, { mode: 0o700 });
  await chmod(script, 0o700);
  return GUARD_NAME;
}

/** GuardReport is what the guard process wrote about one run. */
export interface GuardReport {
  refused: GuardFinding[];
  dropped: GuardObject[];
  unknownKind: boolean;
}

/** GuardedRun is the outcome of withRenderGuard: fn's result and the guard's report (when it ran). */
export interface GuardedRun<T> {
  value: T;
  report?: GuardReport;
}

/**
 * withRenderGuard writes the policy of one helm run into a fresh private directory, runs
 * `fn` with the post-renderer flags that point the guard at it, and reads the guard's
 * report back. When helm fails and the guard refused something, the failure becomes
 * FAILED_PRECONDITION with the guard's message (`onUnknownKind` is told when a kind was
 * missing from the policy's discovery data); other failures pass through unchanged.
 */
export async function withRenderGuard<T>(
  policy: GuardPolicy,
  postRenderer: string,
  fn: (flags: string[]) => Promise<T>,
  opts: { parentDir?: string; onUnknownKind?: () => void; onVerdict?: (report: GuardReport) => void } = {},
): Promise<GuardedRun<T>> {
  const dir = await mkdtemp(join(opts.parentDir ?? tmpdir(), "paas-helm-guard-"));
  try {
    const runFile = join(dir, "run.json");
    const reportFile = join(dir, "report.json");
    await writeFile(runFile, JSON.stringify({ policy, report: reportFile }), { mode: 0o600, flag: "wx" });
    const flags = ["--post-renderer", postRenderer, "--post-renderer-args", runFile];
    const readReport = async (): Promise<GuardReport | undefined> => {
      try {
        return JSON.parse(await readFile(reportFile, "utf8")) as GuardReport;
      } catch {
        return undefined;
      }
    };
    // The guard's verdict is the report file appearing, while helm still runs (it applies
    // what passed next): looked for every 50 ms, for whoever records the steps.
    let told = false;
    const tell = async () => {
      if (told || !opts.onVerdict) return;
      const report = await readReport();
      if (report && !told) {
        told = true;
        opts.onVerdict(report);
      }
    };
    const poll = opts.onVerdict ? setInterval(() => void tell(), 50) : undefined;
    let value: T;
    try {
      value = await fn(flags);
    } catch (err) {
      clearInterval(poll);
      await tell();
      const report = await readReport();
      if (report?.unknownKind) opts.onUnknownKind?.();
      if (report && report.refused.length > 0) {
        throw new PaasError(
          "failed_precondition",
          `The chart was refused before anything was applied: ${describeRefusal(report.refused)}`,
          { cause: err },
        );
      }
      throw err;
    }
    clearInterval(poll);
    await tell();
    return { value, report: await readReport() };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
