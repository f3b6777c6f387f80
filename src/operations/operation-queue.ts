import { PaasError } from "../errors.ts";
import { metrics, since } from "../metrics/metrics.ts";

/** QueueOptions bound how long an operation waits and name it to those queued behind it. */
export interface QueueOptions {
  /** Date.now()-based time by which the operation must have started; absent: wait as long as it takes. */
  deadline?: number;
  /** Who runs this operation, named in the refusal of an operation that gave up waiting for it. */
  label?: string;
}

interface Entry {
  label: string;
}

/**
 * OperationQueue runs operations one at a time per key (a release) and at most
 * `concurrency` at once across keys, in arrival order. Two upgrades of one release
 * then run one after the other instead of the second failing on Helm's lock. An operation
 * that has not started by its deadline gives up: ABORTED (conflict) naming the operation it
 * waited for, or UNAVAILABLE when every slot was busy. A started operation is never cut short.
 */
export class OperationQueue {
  private readonly tails = new Map<string, Promise<void>>();
  private readonly current = new Map<string, Entry>();
  private readonly waiting: Array<() => void> = [];
  private running = 0;
  private readonly concurrency: number;
  /** The queue label of paas_queue_wait_seconds. */
  private readonly name: string;

  constructor(concurrency: number, name = "helm") {
    this.concurrency = concurrency;
    this.name = name;
  }

  /** run queues fn behind earlier operations on the same key and resolves with its result. */
  async run<T>(key: string, fn: () => Promise<T>, options: QueueOptions = {}): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    const queued = performance.now();
    const waited = (outcome: "started" | "gave_up") =>
      metrics.queueWait.observe({ queue: this.name, outcome }, since(queued));
    try {
      await this.before(previous, options.deadline, () => {
        const holder = this.current.get(key)?.label;
        waited("gave_up");
        return new PaasError(
          "conflict",
          `${key} is being changed by ${holder ? `operation ${holder}` : "another operation"}; retry later`,
        );
      });
      this.current.set(key, { label: options.label ?? "" });
      try {
        await this.acquire(options.deadline).catch((err: unknown) => {
          waited("gave_up");
          throw err;
        });
        waited("started");
        try {
          return await fn();
        } finally {
          this.releaseSlot();
        }
      } finally {
        this.current.delete(key);
      }
    } finally {
      release();
      // Forget the key once nothing is queued behind this operation.
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** holderOf names the operation that has the key now (its label), if one does. */
  holderOf(key: string): string | undefined {
    return this.current.get(key)?.label || undefined;
  }

  /** active is the number of operations running now. */
  get active(): number {
    return this.running;
  }

  /** pendingKeys is the number of keys with a running or queued operation. */
  get pendingKeys(): number {
    return this.tails.size;
  }

  /** idle resolves when no operation is running or queued. */
  async idle(): Promise<void> {
    while (this.tails.size > 0) await Promise.allSettled([...this.tails.values()]);
  }

  private async before(p: Promise<void>, deadline: number | undefined, refusal: () => PaasError): Promise<void> {
    if (deadline === undefined) return p;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<"expired">(
      (resolve) => (timer = setTimeout(() => resolve("expired"), Math.max(0, deadline - Date.now()))),
    );
    try {
      const won = await Promise.race([p.then(() => "ready" as const), expired]);
      if (won === "expired") throw refusal();
    } finally {
      clearTimeout(timer);
    }
  }

  private acquire(deadline: number | undefined): Promise<void> {
    if (this.running < this.concurrency) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const take = () => {
        clearTimeout(timer);
        this.running++;
        resolve();
      };
      this.waiting.push(take);
      if (deadline !== undefined) {
        timer = setTimeout(
          () => {
            const i = this.waiting.indexOf(take);
            if (i >= 0) this.waiting.splice(i, 1);
            reject(new PaasError("unavailable", `all ${this.concurrency} helm slots stayed busy; retry later`));
          },
          Math.max(0, deadline - Date.now()),
        );
      }
    });
  }

  private releaseSlot(): void {
    this.running--;
    this.waiting.shift()?.();
  }
}
