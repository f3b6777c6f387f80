/**
 * What the operation runner needs from the cluster, as ports: the Kubernetes Lease per
 * release (src/kube/leases/leases.ts) and the repair of stuck releases (src/kube/storage/release-recovery.ts).
 * Tests pass in-memory versions (test/support/fakes.ts).
 */

/** A Lease held by this process for one release. */
export interface HeldLease {
  readonly name: string;
  /** "<replica>/<operation id>" */
  readonly holder: string;
  /** Aborts (reason: PaasError "unavailable") when the Lease could not be renewed in time. */
  readonly lost: AbortSignal;
  /** Stops renewing and gives the Lease up; never throws. */
  release(): Promise<void>;
}

/** Who holds a release's Lease. */
export interface LeaseHolder {
  holder: string;
  renewedAt: Date;
  durationSeconds: number;
  live: boolean;
}

/** The target of a Lease: a release, or a whole namespace (release ""). */
export interface LeaseTarget {
  namespace: string;
  release: string;
}

/** ReleaseLocks hands out one writer per release across every replica. */
export interface ReleaseLocks {
  /**
   * Waits until the deadline (Date.now()-based ms) for the Lease; then rejects with a
   * "conflict" PaasError naming the holder. "unavailable" when the API cannot be reached.
   */
  acquire(target: LeaseTarget, operationId: string, deadline: number, signal?: AbortSignal): Promise<HeldLease>;
  holderOf(namespace: string, release: string): Promise<LeaseHolder | undefined>;
  /** Gives up every Lease this process holds (shutdown). */
  releaseAll(): Promise<void>;
}

export type PendingStatus = "pending-install" | "pending-upgrade" | "pending-rollback";

/** A revision left pending by an operation that died. */
export interface PendingRevision {
  namespace: string;
  release: string;
  revision: number;
  status: PendingStatus;
  since?: Date;
}

/** ReleaseRecovery repairs releases stuck in pending-*; the caller holds the release's Lease. */
export interface ReleaseRecovery {
  /** Marks the newest revision failed when it is pending-*; undefined when it is not (or there is no release). */
  markPendingFailed(namespace: string, release: string, description: string): Promise<PendingRevision | undefined>;
  /**
   * The newest revision of a release and its status, from the storage records' labels alone
   * (no record is read or decoded); undefined when the release does not exist.
   */
  newestRevision(namespace: string, release: string): Promise<{ revision: number; status: string } | undefined>;
  /** Every managed release under the prefix whose newest revision is pending-*. */
  listPending(prefix: string): Promise<PendingRevision[]>;
  /**
   * Sets labels on one revision's storage record: a rollback copies the labels of the
   * revision it returns to, so the operation that made it stamps its own caller and id.
   */
  stampRevision(namespace: string, release: string, revision: number, labels: Record<string, string>): Promise<void>;
}
