/**
 * StepSink is told when work passes from one named step to the next; the operation engine
 * records what adapters report through it (helm's pull, render guard and apply, a
 * namespace's provisioning). Adapters call it and never depend on who listens.
 */
export interface StepSink {
  begin(name: string, detail?: string): void;
  end(name: string, detail?: string): void;
}
