import type { Logger } from "pino";
import { newOperationId } from "../audit/ids.ts";
import type { AuditStore } from "../domain/audit.ts";
import { PaasError } from "../errors.ts";
import type { OperationEngine } from "./engine.ts";
import type { ReleaseRepair } from "./release-repair.ts";
import type { ReleaseLocks, ReleaseRecovery } from "../domain/ports.ts";

export interface ReconcilerDeps {
  repair: ReleaseRepair;
  /** Adopts queued operations of dead replicas, runs cancellations asked elsewhere, purges old operations. */
  engine?: OperationEngine;
  audit: AuditStore;
  locks: ReleaseLocks;
  recovery: ReleaseRecovery;
  replica: string;
  prefix: string;
  /** How often this replica records that it is alive. */
  heartbeatMs: number;
  /** How often stuck releases and orphaned intents are looked for. */
  intervalMs: number;
  /**
   * A revision pending for less than this is left alone by the periodic pass, even with its
   * Lease free: it may belong to someone running helm by hand (unsupported, but not to be
   * broken). The next operation on the release repairs it at once, holding the Lease.
   */
  minPendingAgeMs: number;
  logger: Logger;
}

const SYSTEM = { caller: "system", sourceIp: "", userAgent: "paas-operator reconciler", requestId: "" };

/**
 * Reconciler keeps this replica's heartbeat in the audit store and, at start-up and then
 * periodically, repairs releases left pending by dead operations (only those whose Lease it
 * can take at once: a live Lease means a live operation) and closes the audit intents of
 * dead replicas as recovered, after checking the release's history.
 */
export class Reconciler {
  private readonly deps: ReconcilerDeps;
  private timers: NodeJS.Timeout[] = [];
  private running: Promise<unknown> | undefined;

  constructor(deps: ReconcilerDeps) {
    this.deps = deps;
  }

  async start(): Promise<void> {
    await this.beat();
    await this.reconcileSafely();
    this.deps.engine?.startBackground(this.deps.heartbeatMs);
    this.timers = [
      setInterval(() => void this.beat(), this.deps.heartbeatMs),
      setInterval(() => void this.reconcileSafely(), this.deps.intervalMs),
    ];
    for (const t of this.timers) t.unref();
  }

  async stop(): Promise<void> {
    await this.deps.engine?.stopBackground();
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.running;
  }

  /** reconcile runs one pass; returns how many releases were repaired and intents closed. */
  async reconcile(): Promise<{ repaired: number; closed: number }> {
    const { recovery, locks, repair, logger } = this.deps;
    let repaired = 0;
    const now = Date.now();
    for (const p of await recovery.listPending(this.deps.prefix)) {
      if (p.since && now - p.since.getTime() < this.deps.minPendingAgeMs) continue;
      const id = newOperationId();
      let lease;
      try {
        lease = await locks.acquire({ namespace: p.namespace, release: p.release }, id, Date.now());
      } catch (err) {
        // A live Lease: an operation is running on it; never touch it.
        if (err instanceof PaasError && err.kind === "conflict") continue;
        throw err;
      }
      try {
        if (await repair.repairHeld(p.namespace, p.release, id, SYSTEM)) repaired++;
      } finally {
        await lease.release();
      }
    }
    // Intents of dead replicas whose release is not pending any more (a pending one is closed
    // by its repair above, once its Lease has expired).
    const closed = await repair.closeOrphans(
      async (i) =>
        !i.release || !(await recovery.newestRevision(i.namespace, i.release))?.status.startsWith("pending-"),
      undefined,
      "closed from the release's history",
    );
    if (repaired + closed > 0) logger.info({ repaired, closed }, "reconciled interrupted operations");
    return { repaired, closed };
  }

  private async beat(): Promise<void> {
    try {
      await this.deps.audit.heartbeat(this.deps.replica);
    } catch (err) {
      this.deps.logger.warn({ err: err instanceof Error ? err.message : String(err) }, "audit: heartbeat failed");
    }
  }

  private async reconcileSafely(): Promise<void> {
    if (this.running) return;
    this.running = this.reconcile()
      .catch((err: unknown) =>
        this.deps.logger.warn(
          { err: err instanceof Error ? err.message : String(err) },
          "reconcile pass failed; retrying later",
        ),
      )
      .finally(() => (this.running = undefined));
    await this.running;
  }
}
