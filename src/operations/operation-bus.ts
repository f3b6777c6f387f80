import { EventEmitter } from "node:events";
import type { OperationRecord } from "../domain/operation.ts";

/**
 * OperationBus tells this replica's watchers that an operation changed (a step, progress,
 * its state). Operations run by other replicas are seen through the store instead.
 */
export class OperationBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    // One listener per open WatchOperation stream.
    this.emitter.setMaxListeners(0);
  }

  publish(op: OperationRecord): void {
    this.emitter.emit(op.id, op);
  }

  /** subscribe calls `fn` on every change of operation `id` until the returned function is called. */
  subscribe(id: string, fn: (op: OperationRecord) => void): () => void {
    this.emitter.on(id, fn);
    return () => this.emitter.off(id, fn);
  }
}
