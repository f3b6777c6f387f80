/**
 * OperationQueue runs operations one at a time per key (a release) and at most
 * `concurrency` at once across keys, in arrival order. Two upgrades of one release
 * then run one after the other instead of the second failing on Helm's lock.
 */
export class OperationQueue {
  private readonly tails = new Map<string, Promise<void>>();
  private readonly waiting: Array<() => void> = [];
  private running = 0;
  private readonly concurrency: number;

  constructor(concurrency: number) {
    this.concurrency = concurrency;
  }

  /** run queues fn behind earlier operations on the same key and resolves with its result. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    try {
      await previous;
      await this.acquire();
      try {
        return await fn();
      } finally {
        this.releaseSlot();
      }
    } finally {
      release();
      // Forget the key once nothing is queued behind this operation.
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
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

  private acquire(): Promise<void> {
    if (this.running < this.concurrency) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(() => {
      this.running++;
      resolve();
    }));
  }

  private releaseSlot(): void {
    this.running--;
    this.waiting.shift()?.();
  }
}
