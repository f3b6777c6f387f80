import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { appendFile, chown, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** PrivatePostgres is a PostgreSQL server of one test file, which it may stop and start again. */
export interface PrivatePostgres {
  /** postgresql://paas:<password>@127.0.0.1:<port>/postgres (the port stays the same across stop/start). */
  url: string;
  password: string;
  port: number;
  /** pg_ctl stop -m fast: connections are cut, new ones are refused. */
  stop(): Promise<void>;
  /** Starts the stopped server again on the same port. */
  start(): Promise<void>;
  /** Stops the server (when it runs) and removes its files. */
  destroy(): Promise<void>;
}

/** pgBin is the directory of initdb and pg_ctl: $PG_BIN (.testbed/env), else Debian's newest /usr/lib/postgresql/<v>/bin. */
export function pgBin(): string {
  const fromEnv = process.env.PG_BIN;
  if (fromEnv && existsSync(join(fromEnv, "pg_ctl"))) return fromEnv;
  const base = "/usr/lib/postgresql";
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(join(base, v, "bin", "pg_ctl"))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (versions[0]) return join(base, versions[0], "bin");
  throw new Error(
    "PostgreSQL server binaries not found: set PG_BIN (scripts/testbed/postgres.sh start writes it into .testbed/env)",
  );
}

/**
 * startPrivatePostgres initdb's a throw-away cluster in a temp directory (no fsync: fast, not
 * crash-safe) and starts it on a free loopback port. As root, initdb and the server run as the
 * `postgres` OS user (they refuse root).
 */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = pgBin();
  const asRoot = process.getuid?.() === 0;
  const as = (cmd: string, args: string[]) =>
    asRoot ? run("runuser", ["-u", "postgres", "--", cmd, ...args], { cwd: "/" }) : run(cmd, args, { cwd: "/" });

  const root = await mkdtemp(join(tmpdir(), "paas-pg-"));
  const data = join(root, "data");
  const password = randomBytes(16).toString("hex");
  const port = await freePort();
  if (asRoot) {
    const uid = Number((await run("id", ["-u", "postgres"])).stdout.trim());
    const gid = Number((await run("id", ["-g", "postgres"])).stdout.trim());
    await chown(root, uid, gid);
    await writeFile(join(root, "pw"), password, { mode: 0o600 });
    await chown(join(root, "pw"), uid, gid);
  } else {
    await writeFile(join(root, "pw"), password, { mode: 0o600 });
  }
  try {
    await as(join(bin, "initdb"), [
      "-D",
      data,
      "-U",
      "paas",
      `--pwfile=${join(root, "pw")}`,
      "--auth-local=trust",
      "--auth-host=scram-sha-256",
      "-E",
      "UTF8",
      "--locale=C",
      "--no-sync",
    ]);
    await rm(join(root, "pw"));
    await appendFile(
      join(data, "postgresql.conf"),
      [
        "",
        "listen_addresses = '127.0.0.1'",
        `port = ${port}`,
        `unix_socket_directories = '${root}'`,
        "fsync = off",
        "full_page_writes = off",
        "synchronous_commit = off",
        "max_connections = 50",
        "",
      ].join("\n"),
    );
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw err;
  }

  let running = false;
  const start = async () => {
    await as(join(bin, "pg_ctl"), ["-D", data, "-l", join(root, "postgres.log"), "-w", "-t", "30", "start"]);
    running = true;
  };
  const stop = async () => {
    await as(join(bin, "pg_ctl"), ["-D", data, "-m", "fast", "-w", "-t", "30", "stop"]);
    running = false;
  };
  try {
    await start();
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw err;
  }
  return {
    url: `postgresql://paas:${password}@127.0.0.1:${port}/postgres`,
    password,
    port,
    start,
    stop,
    destroy: async () => {
      if (running) await stop().catch(() => undefined);
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** freePort asks the kernel for a free loopback port. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
