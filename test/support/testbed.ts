import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { ensureTenantRoles } from "./tenant-roles.ts";

/** testbedEnv returns the testbed's variables; a missing one fails the suite loudly. */
export function testbedEnv() {
  const need = [
    "KUBECONFIG",
    "HELM_BINARY",
    "HELM_V3_BINARY",
    "CHART_REPO_URL",
    "OCI_REGISTRY",
    "GRPC_HEALTH_PROBE",
    "GRPCURL",
  ] as const;
  const missing = need.filter((n) => !process.env[n]);
  if (missing.length > 0) {
    throw new Error(
      `testbed variables missing: ${missing.join(", ")}. Run 'npm run testbed:up' and 'set -a; source .testbed/env; set +a' (npm test does both).`,
    );
  }
  return Object.fromEntries(need.map((n) => [n, process.env[n]!])) as Record<(typeof need)[number], string>;
}

/** uniqueNamespace returns a fresh tenant namespace name for one test run. */
export function uniqueNamespace(tag: string): string {
  return `paas-ws-${tag}-${randomBytes(3).toString("hex")}`;
}

/** LEASE_NAMESPACE of every test server: servers of one test exclude each other through it. */
export const TEST_LEASE_NAMESPACE = "paas-operator-e2e";

/** ServerProcess is the real server started as a child process. */
export interface ServerProcess {
  port: number;
  /** The SQLite audit file (unless AUDIT_DATABASE_URL was given): reuse it to "restart" the server. */
  auditPath: string;
  baseUrl: string;
  apiKey: string;
  proc: ChildProcess;
  /** Every log line the server printed, parsed. */
  logs: Array<Record<string, unknown>>;
  /** stop sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /**
   * crash kills the server and every process it started (helm included) with SIGKILL, as
   * when a pod's container is killed: nothing gets to clean up. Resolves with the killed PIDs.
   */
  crash(): Promise<number[]>;
}

/** descendants lists the PIDs of every process below `pid` (from /proc), deepest last. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command may hold spaces and parentheses: the fields after the last ')' are fixed.
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // The process ended meanwhile.
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/**
 * startServer runs `node src/main.ts` on a free loopback port and waits until it listens;
 * `cwd` runs another checkout's server (a benchmark's baseline).
 */
export async function startServer(env: Record<string, string> = {}, cwd?: string): Promise<ServerProcess> {
  const tb = testbedEnv();
  // CreateNamespace binds these ClusterRoles (k8s/rbac.yaml); an administrator applies them.
  await ensureTenantRoles(tb.KUBECONFIG);
  const apiKey = env.API_KEY ?? `e2e-${randomBytes(16).toString("hex")}`;
  // Each server gets its own audit file unless the test shares one (a restart) or a database.
  const auditPath = env.AUDIT_SQLITE_PATH ?? join(mkdtempSync(join(tmpdir(), "paas-audit-")), "audit.db");
  const proc = spawn(process.execPath, ["src/main.ts"], {
    ...(cwd ? { cwd } : {}),
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      KUBECONFIG: tb.KUBECONFIG,
      HELM_BINARY: tb.HELM_BINARY,
      API_KEY: apiKey,
      HOST: "127.0.0.1",
      PORT: "0",
      LOG_LEVEL: "debug",
      HEALTH_CHECK_INTERVAL: "1s",
      AUDIT_SQLITE_PATH: auditPath,
      LEASE_NAMESPACE: TEST_LEASE_NAMESPACE,
      HELM_REPOSITORIES: `testbed=${tb.CHART_REPO_URL}`,
      HELM_PLAIN_HTTP_REGISTRIES: tb.OCI_REGISTRY,
      // podinfo (default values) and odoo, which the lifecycle suites install, need
      // "baseline"; the isolation suites ask for "restricted" (the product default).
      POD_SECURITY_LEVEL: "baseline",
      // The testbed's chart catalogue (scripts/testbed/write-catalog.sh), when there is one.
      ...(process.env.CHART_CATALOG_FILE ? { CHART_CATALOG_FILE: process.env.CHART_CATALOG_FILE } : {}),
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Array<Record<string, unknown>> = [];
  let stderr = "";
  proc.stderr!.on("data", (d) => (stderr += d));
  const exited = once(proc, "exit").then(([code]) => code as number | null);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 30s; stderr: ${stderr}`)), 30_000);
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === "listening") {
          clearTimeout(timer);
          resolve(entry.port as number);
        }
      } catch {
        logs.push({ raw: line });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening; stderr: ${stderr}`));
    });
  });
  return {
    port,
    auditPath,
    baseUrl: `http://127.0.0.1:${port}`,
    apiKey,
    proc,
    logs,
    async stop(signal = "SIGTERM") {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill(signal);
      return exited;
    },
    async crash() {
      const pids = [proc.pid!, ...descendants(proc.pid!)];
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
      await exited;
      return pids;
    },
  };
}
