import { type RunResult, runProcess } from "../process/run.ts";
import { type ClassifyContext, classify } from "./helm-errors.ts";
import { sanitizeStderr } from "./sanitize.ts";
import { metrics } from "../metrics/metrics.ts";

/** HelmLogger is the pino-style logger the adapter writes to: (fields, message). */
export interface HelmLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** HelmRunner runs one helm command and returns its stdout, or throws a classified PaasError. */
export type HelmRunner = (args: string[], ctx: ClassifyContext, options: HelmRunOptions) => Promise<string>;

/** HelmRunOptions are the per-run knobs of a HelmRunner. */
export interface HelmRunOptions {
  signal?: AbortSignal;
  /** Safety net in seconds after which helm gets SIGTERM; helm's own --timeout should fire first. */
  deadlineSeconds: number;
  /** Variables of this run only, over the client's (e.g. a fresh helm home). */
  env?: Record<string, string>;
  /** Receives the raw stderr of a successful run (helm v3 prints `pull`'s "Digest:" there). */
  onStderr?: (stderr: string) => void;
}

/** RunnerConfig is what every run of one client shares. */
export interface RunnerConfig {
  binary: string;
  env: Record<string, string>;
  cwd: string;
  logger: HelmLogger;
}

// Reads are frequent and uninteresting; writes change the cluster and are logged at info.
const WRITES = new Set(["install", "upgrade", "rollback", "uninstall"]);

/**
 * createRunner binds the process runner to one helm binary and environment, logs every
 * command line (argv holds no values: those are in a private file) with its duration and
 * exit code, and classifies failures. A run whose signal is already aborted never starts.
 */
export function createRunner(config: RunnerConfig): HelmRunner {
  return async (args, ctx, options) => {
    const level = WRITES.has(ctx.verb) ? "info" : "debug";
    if (options.signal?.aborted) {
      throw classify(
        { exitCode: null, stderr: "", timedOut: false, aborted: true, abortReason: options.signal.reason },
        ctx,
      );
    }
    // Writes are logged when they start too: an operator reading the log during an incident
    // (or a shutdown) must see which helm runs are in flight.
    if (level === "info") config.logger.info({ helm: args }, `helm ${ctx.verb} started`);
    const verb = { verb: ctx.verb };
    metrics.helmRunning.inc(verb);
    let result: RunResult;
    try {
      result = await runProcess(config.binary, args, {
        env: options.env ? { ...config.env, ...options.env } : config.env,
        cwd: config.cwd,
        signal: options.signal,
        timeoutMs: options.deadlineSeconds * 1000,
      });
    } finally {
      metrics.helmRunning.dec(verb);
    }
    metrics.helmDuration.observe(verb, result.durationMs / 1000);
    metrics.helmRuns.inc({
      verb: ctx.verb,
      outcome:
        result.exitCode === 0 && !result.failure
          ? "success"
          : result.timedOut
            ? "timeout"
            : result.aborted
              ? "aborted"
              : "failure",
    });
    const fields = {
      helm: args,
      exitCode: result.exitCode,
      signal: result.signal,
      durationMs: Math.round(result.durationMs),
    };
    // An exit code of 0 is success even if a cancel arrived while helm was finishing.
    if (result.exitCode === 0 && !result.failure) {
      options.onStderr?.(result.stderr);
      config.logger[level](
        result.stderr.trim() ? { ...fields, stderr: sanitizeStderr(result.stderr) } : fields,
        `helm ${ctx.verb}`,
      );
      return result.stdout;
    }
    const error = classify({ ...result, abortReason: options.signal?.reason }, ctx);
    config.logger.warn(
      {
        ...fields,
        timedOut: result.timedOut,
        aborted: result.aborted,
        failure: result.failure,
        kind: error.kind,
        stderr: sanitizeStderr(result.stderr),
      },
      `helm ${ctx.verb} failed`,
    );
    throw error;
  };
}
