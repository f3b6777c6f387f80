import { describe, expect, it } from "vitest";
import { runProcess } from "../../../src/process/run.ts";

const env = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
const node = process.execPath;

// A child that traps SIGTERM, says so, and exits 143 on its own after a short cleanup.
const trapsTerm = `
process.on("SIGTERM", () => { process.stdout.write("got SIGTERM\\n"); setTimeout(() => process.exit(143), 100); });
setTimeout(() => {}, 60_000);
process.stdout.write("ready\\n");
`;

describe.concurrent("runProcess", () => {
  it("returns exit code, stdout and stderr without rejecting", async () => {
    const r = await runProcess(
      node,
      ["-e", 'process.stdout.write("out"); process.stderr.write("err"); process.exit(3)'],
      { env },
    );
    expect(r).toMatchObject({ exitCode: 3, stdout: "out", stderr: "err", timedOut: false, aborted: false });
    expect(r.failure).toBeUndefined();
  });

  it("passes arguments verbatim (no shell) and only the given environment", async () => {
    const r = await runProcess(
      node,
      [
        "-e",
        "console.log(JSON.stringify([process.argv.slice(1), process.env.ONLY, process.env.HOME]))",
        "$(id)",
        "a b;c",
      ],
      {
        env: { ...env, ONLY: "yes" },
        input: "",
      },
    );
    expect(JSON.parse(r.stdout)).toEqual([["$(id)", "a b;c"], "yes", null]);
  });

  it("feeds input to stdin", async () => {
    const r = await runProcess(node, ["-e", "process.stdin.pipe(process.stdout)"], { env, input: "hello" });
    expect(r.stdout).toBe("hello");
  });

  it("reports a binary that cannot be started", async () => {
    const r = await runProcess("/nonexistent/helm", [], { env });
    expect(r.exitCode).toBeNull();
    expect(r.failure).toMatch(/could not start/);
  });

  it("on abort sends SIGTERM only and waits for the child to exit by itself", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 600);
    const r = await runProcess(node, ["-e", trapsTerm], { env, signal: controller.signal });
    expect(r.aborted).toBe(true);
    // The child's own exit code: it was not SIGKILLed.
    expect(r.exitCode).toBe(143);
    expect(r.signal).toBeUndefined();
    expect(r.stdout).toContain("got SIGTERM");
  });

  it("on timeout sends SIGTERM and never escalates to SIGKILL", async () => {
    // This child ignores SIGTERM for 6 s, longer than execa's default 5 s SIGKILL delay.
    const stubborn = `process.on("SIGTERM", () => { process.stdout.write("ignoring\\n"); setTimeout(() => process.exit(0), 6000); }); setTimeout(() => {}, 60_000);`;
    const r = await runProcess(node, ["-e", stubborn], { env, timeoutMs: 1000 });
    expect(r.timedOut).toBe(true);
    expect(r.exitCode).toBe(0);
    expect(r.signal).toBeUndefined();
    expect(r.durationMs).toBeGreaterThan(6000);
  }, 15_000);

  it("a child without a SIGTERM handler dies from SIGTERM", async () => {
    const r = await runProcess(node, ["-e", "setTimeout(() => {}, 60_000)"], { env, timeoutMs: 200 });
    expect(r).toMatchObject({ timedOut: true, exitCode: null, signal: "SIGTERM" });
  });

  it("does not block the event loop while the child runs", async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    await runProcess(node, ["-e", "setTimeout(() => {}, 300)"], { env });
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(10);
  });
});
