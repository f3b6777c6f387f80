import { PaasError } from "../errors.ts";

/**
 * Lifecycle tracks whether the process is serving or draining. On SIGTERM readiness goes
 * false and new mutations are refused at once; running helm processes are left to finish
 * and only receive SIGTERM (through helmSignal) when the grace period is about to run out.
 */
export class Lifecycle {
  private drainingSince: number | undefined;
  private readonly helmAbort = new AbortController();
  private readonly streamsAbort = new AbortController();

  /** helmSignal aborts running helm processes (SIGTERM, never SIGKILL) as a last resort. */
  get helmSignal(): AbortSignal {
    return this.helmAbort.signal;
  }

  /** streamsSignal ends long-lived streams (watches) when draining starts. */
  get streamsSignal(): AbortSignal {
    return this.streamsAbort.signal;
  }

  get draining(): boolean {
    return this.drainingSince !== undefined;
  }

  /** startDraining marks the process as shutting down. */
  startDraining(): void {
    this.drainingSince ??= Date.now();
    this.streamsAbort.abort(new PaasError("unavailable", "the server is shutting down"));
  }

  /** terminateHelm sends SIGTERM to every running helm process. */
  terminateHelm(): void {
    this.helmAbort.abort(new PaasError("unavailable", "the server is shutting down"));
  }

  /** assertAcceptingMutations throws UNAVAILABLE while draining. */
  assertAcceptingMutations(): void {
    if (this.draining) throw new PaasError("unavailable", "the server is shutting down; retry on another replica");
  }
}
