import type { Logger } from "pino";
import type { OperationBus } from "./operation-bus.ts";
import type { OperationRecord, OperationStore, ProgressRecord, StepRecord, StepState } from "../domain/operation.ts";
import type { StepListener } from "../domain/webhook.ts";

/** StepReporter is how adapters (helm, the namespace provisioning) report steps they run. */
export interface StepReporter {
  /** A step starts (ends the running step of the same name first, if any). */
  begin(name: string, detail?: string): void;
  /** The step ends; its detail is replaced when one is given. */
  end(name: string, detail?: string, state?: StepState): void;
  /** The running step's detail changes (e.g. who holds the Lease it waits for). */
  detail(name: string, detail: string): void;
  /** isRunning tells whether a step of that name is running now. */
  isRunning(name: string): boolean;
}

/** Progress writes reach the store at most this often; watchers on this replica see every change. */
const PROGRESS_SAVE_MS = 1000;

/**
 * StepTracker records one operation's steps and progress: every change is published on the
 * bus at once and written to the store in order (progress at most once a second), so that
 * watchers here and on other replicas follow it.
 */
export class StepTracker implements StepReporter {
  readonly op: OperationRecord;
  private readonly store: OperationStore;
  private readonly bus: OperationBus;
  private readonly logger: Logger;
  private writes: Promise<void> = Promise.resolve();
  private lastProgressSave = 0;
  private progressTimer: NodeJS.Timeout | undefined;

  private readonly onStep: StepListener | undefined;

  constructor(op: OperationRecord, store: OperationStore, bus: OperationBus, logger: Logger, onStep?: StepListener) {
    this.onStep = onStep;
    this.op = op;
    this.store = store;
    this.bus = bus;
    this.logger = logger;
  }

  /** current is the step that is running, if any. */
  get current(): StepRecord | undefined {
    return this.op.steps.findLast((s) => s.state === "running");
  }

  isRunning(name: string): boolean {
    return this.op.steps.some((s) => s.name === name && s.state === "running");
  }

  /** has tells whether a step of that name started. */
  has(name: string): boolean {
    return this.op.steps.some((s) => s.name === name);
  }

  begin(name: string, detail = ""): void {
    this.finishRunning(name, "succeeded");
    this.op.steps.push({ name, order: this.op.steps.length + 1, state: "running", detail, startedAt: new Date() });
    this.changed(true);
    this.stepChanged(this.op.steps.at(-1)!);
  }

  end(name: string, detail?: string, state: StepState = "succeeded"): void {
    const step = this.op.steps.findLast((s) => s.name === name && s.state === "running");
    if (!step) return;
    step.state = state;
    step.finishedAt = new Date();
    if (detail !== undefined) step.detail = detail;
    this.changed(true);
    this.stepChanged(step);
  }

  detail(name: string, detail: string): void {
    const step = this.op.steps.findLast((s) => s.name === name && s.state === "running");
    if (!step || step.detail === detail) return;
    step.detail = detail;
    this.changed(true);
  }

  /** add records a step that ran already (e.g. a repair found to be needed after the fact). */
  add(name: string, detail: string, startedAt: Date): void {
    this.op.steps.push({
      name,
      order: this.op.steps.length + 1,
      state: "succeeded",
      detail,
      startedAt,
      finishedAt: new Date(),
    });
    this.changed(true);
  }

  /** run wraps fn as one step: it fails (or is cancelled) with fn. */
  async run<T>(name: string, fn: () => Promise<T>, detailOf?: (value: T) => string, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    this.begin(name);
    try {
      const value = await fn();
      this.end(name, detailOf?.(value));
      return value;
    } catch (err) {
      this.end(name, undefined, signal?.aborted ? "cancelled" : "failed");
      throw err;
    }
  }

  progress(p: ProgressRecord): void {
    const before = JSON.stringify(this.op.progress);
    if (before === JSON.stringify(p)) return;
    this.op.progress = p;
    this.changed(false);
  }

  /** closeSteps ends every running step (the operation ends). */
  closeSteps(state: StepState): void {
    for (const s of this.op.steps) {
      if (s.state !== "running") continue;
      s.state = state;
      s.finishedAt = new Date();
    }
  }

  /** settled resolves when every write so far reached the store (or failed, logged). */
  async settled(): Promise<void> {
    clearTimeout(this.progressTimer);
    this.progressTimer = undefined;
    await this.writes;
  }

  /** publish tells this replica's watchers about the operation as it is now. */
  publish(): void {
    this.op.updatedAt = new Date();
    this.bus.publish(snapshot(this.op));
  }

  /** stepChanged tells the step listener (webhooks) after the store write of this change was queued. */
  private stepChanged(step: StepRecord): void {
    if (!this.onStep) return;
    const op = snapshot(this.op);
    const copy = { ...step };
    this.writes = this.writes.then(() => {
      try {
        this.onStep?.(op, copy);
      } catch (err) {
        this.logger.warn(
          { operation: this.op.id, err: err instanceof Error ? err.message : String(err) },
          "operations: the step listener failed",
        );
      }
    });
  }

  private finishRunning(name: string, state: StepState): void {
    for (const s of this.op.steps) {
      if (s.name === name && s.state === "running") {
        s.state = state;
        s.finishedAt = new Date();
      }
    }
  }

  private changed(steps: boolean): void {
    this.publish();
    if (steps || Date.now() - this.lastProgressSave >= PROGRESS_SAVE_MS) {
      this.save();
      return;
    }
    this.progressTimer ??= setTimeout(() => {
      this.progressTimer = undefined;
      this.save();
    }, PROGRESS_SAVE_MS);
    this.progressTimer.unref();
  }

  private save(): void {
    this.lastProgressSave = Date.now();
    const steps = this.op.steps.map((s) => ({ ...s }));
    const progress = this.op.progress;
    this.writes = this.writes
      .then(() => this.store.saveProgress(this.op.id, steps, progress))
      .catch((err: unknown) =>
        this.logger.warn(
          { operation: this.op.id, err: err instanceof Error ? err.message : String(err) },
          "operations: could not save progress",
        ),
      );
  }
}

/** snapshot copies an operation so that a watcher's copy does not change under it. */
export function snapshot(op: OperationRecord): OperationRecord {
  return {
    ...op,
    steps: op.steps.map((s) => ({ ...s })),
    ...(op.progress ? { progress: { ...op.progress, workloads: op.progress.workloads.map((w) => ({ ...w })) } } : {}),
  };
}
