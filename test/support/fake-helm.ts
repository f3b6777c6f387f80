import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createHelmCli, type HelmCli, type HelmCliOptions } from "../../src/helm/cli.ts";

/** FAKE_HELM is the fake helm executable (test/fixtures/bin/helm). */
export const FAKE_HELM = resolve(import.meta.dirname, "../fixtures/bin/helm");

/** FIXTURES is the folder of recorded helm outputs (test/fixtures/helm/{v3,v4}). */
export const FIXTURES = resolve(import.meta.dirname, "../fixtures/helm");

/** Rule is one scenario rule of the fake helm (see the comment at the top of the script). */
export interface Rule {
  verb?: string;
  match?: string[];
  stdout?: string;
  stdoutFile?: string;
  stderr?: string;
  exitCode?: number;
  delayMs?: number;
  maxUses?: number;
  onTerm?: { stdout?: string; stderr?: string; exitCode?: number };
}

/** LogEntry is one line the fake helm appended to its log. */
export interface LogEntry {
  event: "run" | "exit" | "terminated";
  pid: number;
  argv: string[];
  verb: string;
  cwd: string;
  env: Record<string, string>;
  kubeconfig?: string;
  values?: { path: string; content?: string; mode?: string; error?: string };
  signal?: string;
  exitCode?: number;
}

/** LoggedCall is one call the capturing logger received. */
export interface LoggedCall {
  level: "debug" | "info" | "warn" | "error";
  obj: Record<string, unknown>;
  msg?: string;
}

/** FakeHelm bundles a client wired to the fake helm with its scenario, log and captured logs. */
export interface FakeHelm {
  cli: HelmCli;
  dir: string;
  logs: LoggedCall[];
  /** Replaces the scenario (rules are read by every fake helm run). */
  scenario(rules: Rule[], version?: string): Promise<void>;
  /** Parsed log lines of the fake helm, optionally only one event kind. */
  calls(event?: LogEntry["event"]): Promise<LogEntry[]>;
  /** Resolves once a run of `verb` has started (and installed its SIGTERM handler). */
  started(verb: string): Promise<void>;
  dispose(): Promise<void>;
}

/** fixture returns the absolute path of a recorded output, e.g. fixture(4, "install.json"). */
export function fixture(major: 3 | 4, file: string): string {
  return join(FIXTURES, `v${major}`, file);
}

/** startFakeHelm creates a private folder, a scenario and a client that runs the fake helm. */
export async function startFakeHelm(
  version = "v4.3.1",
  rules: Rule[] = [],
  over: Partial<HelmCliOptions> = {},
): Promise<FakeHelm> {
  const dir = await mkdtemp(join(tmpdir(), "fake-helm-test-"));
  const scenarioPath = join(dir, "scenario.json");
  const logPath = join(dir, "helm.log");
  const logs: LoggedCall[] = [];
  const logger = Object.fromEntries(
    (["debug", "info", "warn", "error"] as const).map((level) => [
      level,
      (obj: Record<string, unknown>, msg?: string) => logs.push({ level, obj, msg }),
    ]),
  ) as unknown as HelmCliOptions["logger"];
  const scenario = (r: Rule[], v = version) => writeFile(scenarioPath, JSON.stringify({ version: v, rules: r }));
  await scenario(rules);
  const cli = createHelmCli({
    binary: FAKE_HELM,
    logger,
    tmpDir: dir,
    env: { FAKE_HELM_LOG: logPath, FAKE_HELM_SCENARIO: scenarioPath, KUBECONFIG: "/etc/paas/kubeconfig" },
    ...over,
  });
  const calls = async (event?: LogEntry["event"]): Promise<LogEntry[]> => {
    const text = await readFile(logPath, "utf8").catch(() => "");
    const entries = text
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as LogEntry);
    return event ? entries.filter((e) => e.event === event) : entries;
  };
  return {
    cli,
    dir,
    logs,
    scenario,
    calls,
    async started(verb) {
      for (let i = 0; i < 500; i++) {
        if ((await calls("run")).some((e) => e.verb === verb)) return;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`fake helm ${verb} did not start`);
    },
    async dispose() {
      await cli.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
