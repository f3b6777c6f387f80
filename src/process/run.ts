import { execa } from "execa";

/** RunOptions control one child process run. */
export interface RunOptions {
  /** The complete environment of the child: nothing is inherited from this process. */
  env: Record<string, string>;
  /** Text written to the child's stdin (stdin is closed either way). */
  input?: string;
  /** Aborting sends SIGTERM; the run still waits for the child to exit. */
  signal?: AbortSignal;
  /** Safety net: after this many milliseconds the child gets SIGTERM (0 or absent = none). */
  timeoutMs?: number;
  cwd?: string;
}

/** RunResult is how a child process ended, classified by the caller. */
export interface RunResult {
  /** The exit code, or null when the child died from a signal. */
  exitCode: number | null;
  /** The signal that ended the child, e.g. "SIGTERM", when it did not exit by itself. */
  signal?: string;
  stdout: string;
  stderr: string;
  /** True when timeoutMs elapsed and the child was sent SIGTERM. */
  timedOut: boolean;
  /** True when the AbortSignal fired and the child was sent SIGTERM. */
  aborted: boolean;
  /** Set when the child could not be started at all (e.g. ENOENT) or its output overflowed. */
  failure?: string;
  durationMs: number;
}

/** Output above this size is a bug (helm prints one release at a time), not data to keep. */
export const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

/**
 * runProcess runs `file` with an argument array (never a shell) and resolves once the
 * child has exited, whatever the outcome; it never rejects for a non-zero exit code.
 * Cancellation and timeouts send SIGTERM only and never escalate to SIGKILL, because a
 * killed helm leaves its release stuck in a pending-* state.
 */
export async function runProcess(file: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  const started = performance.now();
  const result = await execa(file, args, {
    env: options.env,
    extendEnv: false,
    input: options.input ?? "",
    cwd: options.cwd,
    cancelSignal: options.signal,
    timeout: options.timeoutMs && options.timeoutMs > 0 ? Math.ceil(options.timeoutMs) : undefined,
    killSignal: "SIGTERM",
    // execa would otherwise follow SIGTERM with SIGKILL after 5 s.
    forceKillAfterDelay: false,
    // The child is helm, not a Node script: no IPC channel, no graceful-cancel protocol.
    gracefulCancel: false,
    reject: false,
    maxBuffer: MAX_OUTPUT_BYTES,
    stripFinalNewline: false,
    windowsHide: true,
    // Its own process group: a Ctrl-C in a terminal or a signal sent to the operator's group
    // must not reach helm directly; only this runner decides when helm gets SIGTERM. If the
    // operator dies, helm finishes its operation instead of leaving the release pending.
    detached: true,
  });
  const durationMs = performance.now() - started;
  const exitCode = typeof result.exitCode === "number" ? result.exitCode : null;
  return {
    exitCode,
    signal: result.signal ?? undefined,
    stdout: typeof result.stdout === "string" ? result.stdout : "",
    stderr: typeof result.stderr === "string" ? result.stderr : "",
    timedOut: result.timedOut === true,
    aborted: result.isCanceled === true,
    failure: describeFailure(result),
    durationMs,
  };
}

// A spawn failure or an output overflow is not the child's own verdict, so it is
// reported separately; execa's message holds the command line, which is safe (no values).
function describeFailure(result: {
  failed: boolean;
  exitCode?: number;
  signal?: string;
  isMaxBuffer?: boolean;
  code?: string;
  isCanceled?: boolean;
  timedOut?: boolean;
}): string | undefined {
  if (!result.failed) return undefined;
  if (result.isMaxBuffer) return "output exceeded the buffer limit";
  if (result.exitCode === undefined && result.signal === undefined && !result.isCanceled && !result.timedOut) {
    return result.code ? `could not start: ${result.code}` : "could not start";
  }
  return undefined;
}
