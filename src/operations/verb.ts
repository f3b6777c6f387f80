import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import type { JsonObject } from "../domain/release.ts";
import type { AuditOutcome } from "../domain/audit.ts";
import type { Call } from "./call.ts";
import type { ProgressRecord } from "../domain/operation.ts";
import type { StepReporter } from "./step-tracker.ts";

// A verb is one kind of mutation (install, upgrade, …), in the way Helm's pkg/action has one
// file per verb: `prepare` checks and resolves a request before anything is recorded, and
// returns the plan whose `perform` the engine runs once it holds the release. The engine owns
// everything around it: the record, the queue, the Lease, repair, cancellation, progress and
// the audit log.

/** VerbRun is what a plan's perform gets while the operation holds its release. */
export interface VerbRun {
  /** The operation id (Helm's paas-operation label, the audit records). */
  id: string;
  call: Call;
  /**
   * Aborts when the work must stop: the Lease was lost, the operation was cancelled, or (for
   * stoppable work, once helm runs) the shutdown grace period ends. helm gets SIGTERM from it.
   */
  signal: AbortSignal;
  /** Helm labels recording the caller and the operation. */
  labels: Record<string, string>;
  /** Steps: perform and the adapters it calls report theirs here. */
  steps: StepReporter;
  /** step runs fn as one named step (checked for cancellation before it starts). */
  step<T>(name: string, fn: () => Promise<T>, detailOf?: (value: T) => string): Promise<T>;
  /** Pods ready against desired while the operation waits for them. */
  progress(p: ProgressRecord): void;
}

/** Plan is a prepared request: what it acts on, what the audit log records, and the work. */
export interface Plan<Res extends DescMessage> {
  namespace: string;
  /** "" for a namespace operation. */
  release: string;
  chartReference?: string;
  chartVersion?: string;
  values?: JsonObject;
  /** The request's parameters for the ops-API job shape (values never: only their hash). */
  params: Record<string, string | number | boolean>;
  /** Repair a release left pending by a dead operation before running (default: true for releases). */
  repairFirst?: boolean;
  /** How long a synchronous call waits for its release; default the engine's bound. */
  waitMs?: number;
  perform(run: VerbRun): Promise<MessageShape<Res>>;
  /** Resolved chart version of a successful run, for the outcome record. */
  versionOf?(res: MessageShape<Res>): string;
  /** Outcome of a successful run; default "succeeded". */
  outcomeOf?(res: MessageShape<Res>): AuditOutcome;
}

/** Verb is one kind of mutation. */
export interface Verb<Req extends DescMessage = DescMessage, Res extends DescMessage = DescMessage> {
  /** "install", "upgrade", "rollback", "uninstall", "recover", "create-namespace", "delete-namespace". */
  kind: string;
  /** "paas.v1.ReleaseService/InstallRelease" */
  method: string;
  request: Req;
  response: Res;
  /**
   * helm may be stopped (SIGTERM) once it runs: by a cancellation or the end of the shutdown
   * grace period (install, upgrade; Helm then marks the release failed). Rollback and
   * uninstall cannot: helm dies mid-write there, so once their `apply` step started they are
   * not cancelled.
   */
  stoppable: boolean;
  /**
   * Checks the request and resolves what it needs before anything is recorded (a refusal
   * changes nothing). A replica that adopts a queued operation prepares its stored request again.
   */
  prepare(req: MessageShape<Req>): Plan<Res> | Promise<Plan<Res>>;
}

/** AnyVerb erases a verb's message types for the registry. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyVerb = Verb<any, any>;
