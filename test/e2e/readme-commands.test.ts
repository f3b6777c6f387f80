/**
 * Every command the README shows runs, in README order, against the testbed, so that the README
 * cannot drift from the product:
 *
 *  - the server is started the README's way, `npm run dev` (scripts/dev.sh), on a free
 *    127.0.0.1 port with a known key, in a clean environment (no POD_SECURITY_LEVEL, no
 *    catalogue unless the testbed's env names one: what a newcomer gets);
 *  - every ```sh block of README.md and src/rest/README.md is split into commands; each runs
 *    in `bash` with `set -euo pipefail` after these substitutions: `127.0.0.1:8000` → the
 *    server, `127.0.0.1:5000` (the README's registry) → the testbed's OCI registry, `$KEY` →
 *    the key (environment), `paas-ws-<name>` → `paas-ws-<name>-<run id>` (repeatable runs);
 *    `curl` fails on HTTP errors (`--fail-with-body` is added unless the command says `-f`);
 *    the command must exit 0 and print no error body (Connect `{code, message}`, REST `{detail}`);
 *  - commands that call a `Watch*` RPC are streams: they must still run after STREAM_MS,
 *    having printed at least one message, and are then stopped (SIGINT to their process group);
 *  - every ```ts block is type-checked (tsc, the project's settings) and run with Node 24
 *    (type stripping), with `KEY` declared and relative imports pointing into the repository;
 *  - EXCEPTIONS names the commands that cannot run as written, why, and what runs instead;
 *    a command that would change the checkout or the testbed (npm ci, npm test, kubectl apply,
 *    ...) and is not among them fails instead of running.
 *
 * Needs the testbed's environment (`set -a; source .testbed/env; set +a`).
 * README_COMMANDS_DEBUG=1 prints every command with its output.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DOCUMENTS, REPO, fencedBlocks, readDocument, shellCommands } from "../support/readme.ts";
import { descendants, testbedEnv } from "../support/testbed.ts";
import { ensureTenantRoles } from "../support/tenant-roles.ts";

const run = promisify(execFile);
const tb = testbedEnv();
const TESTBED_BIN = process.env.TESTBED_BIN ?? dirname(tb.GRPCURL);
const KUBECTL = process.env.KUBECTL ?? join(TESTBED_BIN, "kubectl");

/** How long a streaming command must keep running (and print something) before it is stopped. */
const STREAM_MS = 8_000;
/** The longest a one-shot command may take (an install with `wait`). */
const COMMAND_MS = 240_000;

// ---------------------------------------------------------------- what runs

/** The client packages in clients/ that README examples import by name, and where they are. */
const CLIENT_PACKAGES: Array<[string, string]> = [["@paas-operator/client", "clients/typescript"]];

/** Step is one README command (sh) or snippet (ts), in document order. */
interface Step {
  file: string;
  line: number;
  kind: "sh" | "ts";
  text: string;
  /** Variable assignments earlier in the same block: each command runs in a fresh shell. */
  assignments: string[];
}

/**
 * Exception: a README command that cannot run as written, why, and what runs instead
 * (the substitutions apply to `instead` as well).
 */
interface Exception {
  command: string;
  reason: string;
  instead: string;
}

const EXCEPTIONS: Exception[] = [
  {
    command: "npm ci && npm run dev",
    reason:
      "`npm ci` deletes and reinstalls the node_modules this test runs from; `npm run dev` is the server every " +
      "other command talks to: beforeAll starts exactly `npm run dev` on a free port and waits for /readyz, the last test stops it",
    instead: "npm ci --dry-run --ignore-scripts --no-audit --no-fund",
  },
  {
    command: "npm ci && npm test",
    reason:
      "`npm test` runs every suite, this file included (and `npm ci` as above); the unit test test/unit/readme.test.ts checks the script exists",
    instead: "npm ci --dry-run --ignore-scripts --no-audit --no-fund && bash -n scripts/test.sh",
  },
  {
    command: "kubectl apply -k k8s/",
    reason:
      "would install the operator into the shared testbed (admission policies that change what other suites see, a second Deployment); " +
      "the same command as a server-side dry run checks every object against the API server (the namespace exists: `npm run dev` created paas-system for its Leases)",
    instead: "kubectl apply -k k8s/ --dry-run=server",
  },
];

/** Commands that change the checkout or the testbed: they run only through EXCEPTIONS. */
const NEVER_AS_WRITTEN =
  /\bnpm\s+(ci|install|i|test|run\s+(dev|test|build|generate|testbed:\w+))\b|\bkubectl\s+(apply|create|delete|replace|patch|edit|scale)\b|testbed[:/](up|down)|\brm\s+-/;

function readmeSteps(): Step[] {
  const steps: Step[] = [];
  for (const file of DOCUMENTS) {
    for (const block of fencedBlocks(file, readDocument(file))) {
      if (["sh", "bash", "shell"].includes(block.lang)) {
        const assignments: string[] = [];
        for (const cmd of shellCommands(block)) {
          steps.push({ file, line: cmd.line, kind: "sh", text: cmd.text, assignments: [...assignments] });
          if (/^(export\s+)?[A-Za-z_]\w*=/.test(cmd.text)) assignments.push(cmd.text);
        }
      } else if (["ts", "typescript"].includes(block.lang)) {
        steps.push({ file, line: block.line + 1, kind: "ts", text: block.text, assignments: [] });
      }
    }
  }
  return steps;
}

const STEPS = readmeSteps();
const isStream = (text: string) => /\/Watch[A-Z]\w*|\.watch[A-Z]\w*\(/.test(text);

// ---------------------------------------------------------------- substitutions

const RUN_ID = randomBytes(3).toString("hex");
const tenants = new Map<string, string>();

/** substitute maps the README's addresses and tenant names to this run's. */
function substitute(text: string, port: number): string {
  return text
    .replace(/\b(?:127\.0\.0\.1|localhost):8000\b/g, `127.0.0.1:${port}`)
    .replace(/\b(?:127\.0\.0\.1|localhost):5000\b/g, tb.OCI_REGISTRY)
    .replace(/\bpaas-ws-[a-z0-9](?:[a-z0-9-]*[a-z0-9])?/g, (ns) => {
      if (!tenants.has(ns)) tenants.set(ns, `${ns}-${RUN_ID}`);
      return tenants.get(ns)!;
    });
}

// ---------------------------------------------------------------- output checks

/** jsonDocuments parses stdout as one JSON value or several (grpcurl prints one per message). */
function jsonDocuments(stdout: string): unknown[] {
  const text = stdout.trim();
  if (text === "") return [];
  try {
    return [JSON.parse(text)];
  } catch {
    const docs: unknown[] = [];
    for (const part of text.split(/(?<=^[}\]])\n(?=[{[])/m)) {
      try {
        docs.push(JSON.parse(part));
      } catch {
        // Not JSON (grpcurl list, a health probe's status line).
      }
    }
    return docs;
  }
}

/** errorBody returns the error a JSON answer carries: Connect {code, message} or REST {detail}. */
function errorBody(doc: unknown): string | undefined {
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) return undefined;
  const o = doc as Record<string, unknown>;
  if (typeof o.code === "string" && "message" in o) return `${o.code}: ${String(o.message)}`;
  if (typeof o.detail === "string") return `${o.detail} (${String(o.error_type)})`;
  if ("error" in o && o.error !== undefined && o.error !== null) return JSON.stringify(o.error);
  return undefined;
}

// ---------------------------------------------------------------- processes

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The process was still running when the stream deadline passed. */
  streaming: boolean;
}

/** runProcess runs a command in its own process group; a stream is stopped after STREAM_MS. */
async function runProcess(cmd: string, args: string[], env: NodeJS.ProcessEnv, stream: boolean): Promise<Finished> {
  const child = spawn(cmd, args, { cwd: REPO, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  const limit = stream ? STREAM_MS : COMMAND_MS;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    // The group this test started (bash and what it runs): SIGINT, as Ctrl-C would.
    process.kill(-child.pid!, stream ? "SIGINT" : "SIGTERM");
  }, limit);
  const [code, signal] = await exited;
  clearTimeout(timer);
  if (timedOut && !stream) stderr += `\n[killed: still running after ${limit / 1000}s]`;
  return { code, signal, stdout, stderr, streaming: stream && timedOut };
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.on("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => res(port));
    });
  });
}

// ---------------------------------------------------------------- the run

describe("README commands against the testbed", () => {
  const apiKey = `readme-${randomBytes(16).toString("hex")}`;
  const work = mkdtempSync(join(tmpdir(), "paas-readme-"));
  const shimDir = join(work, "bin");
  let port = 0;
  let dev: ChildProcess | undefined;
  let devExit: Promise<[number | null, NodeJS.Signals | null]> | undefined;
  let devLog = "";
  let commandEnv: NodeJS.ProcessEnv = {};

  beforeAll(async () => {
    await ensureTenantRoles(tb.KUBECONFIG);
    // curl as the README writes it (`curl -s`) exits 0 on HTTP errors: fail on them, keep the body.
    const realCurl = (await run("bash", ["-c", "command -v curl"])).stdout.trim();
    await run("mkdir", ["-p", shimDir]);
    writeFileSync(
      join(shimDir, "curl"),
      `#!/usr/bin/env bash\nfor a in "$@"; do case "$a" in -f|--fail|--fail-with-body|-[!-]*f*) exec ${realCurl} "$@";; esac; done\nexec ${realCurl} --fail-with-body "$@"\n`,
    );
    chmodSync(join(shimDir, "curl"), 0o755);

    port = await freePort();
    // `npm run dev` as a newcomer runs it: only PATH and HOME from the shell, plus the port and
    // the key; the SQLite audit file goes to a temporary directory instead of data/.
    dev = spawn("npm", ["run", "dev"], {
      cwd: REPO,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        PORT: String(port),
        API_KEY: apiKey,
        AUDIT_SQLITE_PATH: join(work, "audit.db"),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    devExit = once(dev, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
    dev.stdout!.on("data", (d) => (devLog += d));
    dev.stderr!.on("data", (d) => (devLog += d));
    let ended = false;
    void devExit.then(() => (ended = true));
    const deadline = Date.now() + 240_000;
    for (;;) {
      if (ended) throw new Error(`npm run dev exited before it was ready:\n${devLog.slice(-4000)}`);
      if (Date.now() > deadline) throw new Error(`npm run dev not ready in 240s:\n${devLog.slice(-4000)}`);
      const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      await new Promise((r) => setTimeout(r, 500));
    }

    commandEnv = {
      PATH: [shimDir, TESTBED_BIN, process.env.PATH].join(":"),
      HOME: process.env.HOME,
      LANG: process.env.LANG ?? "C.UTF-8",
      KEY: apiKey,
      KUBECONFIG: tb.KUBECONFIG,
    };
  });

  afterAll(async () => {
    for (const ns of tenants.values()) {
      await run(KUBECTL, [
        "--kubeconfig",
        tb.KUBECONFIG,
        "delete",
        "namespace",
        ns,
        "--ignore-not-found",
        "--wait=false",
      ]).catch(() => undefined);
    }
    if (dev && dev.exitCode === null) {
      await stopDev();
    }
    rmSync(work, { recursive: true, force: true });
  });

  /** stopDev sends SIGTERM to the server `npm run dev` exec'd (found by PID below npm). */
  async function stopDev() {
    const server = [dev!.pid!, ...descendants(dev!.pid!)].find((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes("src/main.ts");
      } catch {
        return false;
      }
    });
    if (server === undefined) throw new Error("no node src/main.ts below npm run dev");
    process.kill(server, "SIGTERM");
    return devExit!;
  }

  it("the README has commands to run (sh and ts blocks)", () => {
    expect(STEPS.filter((s) => s.kind === "sh").length).toBeGreaterThanOrEqual(8);
    expect(STEPS.filter((s) => s.kind === "ts").length).toBeGreaterThanOrEqual(1);
  });

  it("every exception names a command the README has, once", () => {
    for (const e of EXCEPTIONS) {
      expect(
        STEPS.filter((s) => s.text === e.command).map((s) => `${s.file}:${s.line}`),
        e.command,
      ).toHaveLength(1);
    }
  });

  for (const step of STEPS) {
    const title = `${step.file}:${step.line} ${step.text.split("\n")[0]!.slice(0, 90)}`;
    it(title, { timeout: COMMAND_MS + 60_000 }, async () => {
      if (step.kind === "ts") return runSnippet(step);
      const exception = EXCEPTIONS.find((e) => e.command === step.text);
      if (!exception && NEVER_AS_WRITTEN.test(step.text)) {
        throw new Error(
          `not run: \`${step.text}\` would change the checkout or the testbed; add it to EXCEPTIONS with what to run instead`,
        );
      }
      const command = substitute(exception ? exception.instead : step.text, port);
      expect(command, "an address the test does not map").not.toMatch(/:(8000|5000)\b/);
      const script = ["set -euo pipefail", ...step.assignments.map((a) => substitute(a, port)), command].join("\n");
      const stream = isStream(command);
      const r = await runProcess("bash", ["-c", script], commandEnv, stream);
      const report = `\n$ ${command}\n--- stdout\n${r.stdout.slice(-3000)}\n--- stderr\n${r.stderr.slice(-3000)}`;
      if (stream) {
        expect(r.streaming, `a stream that ended by itself (exit ${r.code})${report}`).toBe(true);
        expect(jsonDocuments(r.stdout).length, `a stream that printed no message${report}`).toBeGreaterThan(0);
      } else {
        expect(r.code, `exit code${report}`).toBe(0);
      }
      if (process.env.README_COMMANDS_DEBUG) console.log(report);
      for (const doc of jsonDocuments(r.stdout)) expect(errorBody(doc), `an error answer${report}`).toBeUndefined();
    });
  }

  /** runSnippet type-checks a TypeScript example and runs it with Node (type stripping). */
  async function runSnippet(step: Step) {
    const dir = mkdtempSync(join(work, "ts-"));
    const base = resolve(REPO, dirname(step.file));
    let code = substitute(step.text, port).replace(
      /(\bfrom\s+|\bimport\s*\(\s*)(["'])(\.\.?\/[^"']+)\2/g,
      (_m, head: string, q: string, spec: string) => `${head}${q}${resolve(base, spec)}${q}`,
    );
    if (/\bKEY\b/.test(code) && !/\b(const|let|var)\s+KEY\b/.test(code))
      code = `const KEY = process.env.KEY!;\n${code}`;
    // A client package the README installs (`npm install ./clients/typescript`): linked into
    // the example's node_modules, as that install does.
    for (const [name, path] of CLIENT_PACKAGES) {
      if (!code.includes(`"${name}"`)) continue;
      mkdirSync(dirname(join(dir, "node_modules", name)), { recursive: true });
      symlinkSync(join(REPO, path), join(dir, "node_modules", name), "dir");
    }
    // .mts: an ES module wherever it lives (top-level await), without a package.json.
    writeFileSync(join(dir, "example.mts"), code);
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        extends: join(REPO, "tsconfig.json"),
        // An example may leave a result unused (it shows the call).
        compilerOptions: { noUnusedLocals: false, typeRoots: [join(REPO, "node_modules/@types")] },
        files: ["example.mts"],
        include: [],
      }),
    );
    const tsc = await run(join(REPO, "node_modules/.bin/tsc"), ["-p", join(dir, "tsconfig.json")]).then(
      () => "",
      (e: { stdout?: string; stderr?: string }) => `${e.stdout ?? ""}${e.stderr ?? ""}`,
    );
    expect(tsc, `tsc on ${step.file}:${step.line}:\n${code}`).toBe("");
    const r = await runProcess(process.execPath, [join(dir, "example.mts")], commandEnv, isStream(code));
    const report = `\n${code}\n--- stdout\n${r.stdout.slice(-3000)}\n--- stderr\n${r.stderr.slice(-3000)}`;
    if (isStream(code)) {
      expect(r.streaming, `a stream that ended by itself (exit ${r.code})${report}`).toBe(true);
      expect(r.stdout.trim(), `a stream that printed nothing${report}`).not.toBe("");
    } else {
      expect(r.code, `exit code${report}`).toBe(0);
    }
    expect(r.stderr, report).not.toMatch(/Error|Warning/);
  }

  it("npm run dev stops on SIGTERM with exit code 0", { timeout: 120_000 }, async () => {
    expect(dev?.exitCode, `npm run dev ended early:\n${devLog.slice(-3000)}`).toBeNull();
    const [code, signal] = await stopDev();
    if (process.env.README_COMMANDS_DEBUG)
      console.log(
        devLog
          .split("\n")
          .filter((l) => /"level":(40|50|60)/.test(l))
          .join("\n"),
      );
    expect({ code, signal }, devLog.slice(-3000)).toEqual({ code: 0, signal: null });
  });
});
