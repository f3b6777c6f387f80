import type { ChartSource, JsonObject, ReleaseInfo, RevisionInfo } from "../domain/release.ts";
import type { StepSink } from "../domain/steps.ts";

/** HelmSteps: a write reports "pull", "render-guard" (tenant mode) and "apply" (which includes helm's wait). */
export type HelmSteps = StepSink;

/** CommonOptions apply to every helm run. */
export interface CommonOptions {
  namespace: string;
  name: string;
  /** Helm --timeout in seconds. */
  timeoutSeconds: number;
  /** Aborts the run: helm gets SIGTERM (never SIGKILL) so that it can record its outcome. */
  signal?: AbortSignal;
  /** Where the run's steps are reported; absent: not reported. */
  steps?: HelmSteps;
}

export interface InstallOptions extends CommonOptions {
  chart: ChartSource;
  values: JsonObject;
  createNamespace: boolean;
  wait: boolean;
  /** Release labels stored by Helm (--labels). */
  labels: Record<string, string>;
}

export interface UpgradeOptions extends CommonOptions {
  chart: ChartSource;
  values: JsonObject;
  resetValues: boolean;
  reuseValues: boolean;
  wait: boolean;
  labels: Record<string, string>;
}

export interface RollbackOptions extends CommonOptions {
  /** 0 = the previous revision. */
  revision: number;
  wait: boolean;
}

/** HelmClient is what the service needs from Helm; one method per verb. */
export interface HelmClient {
  /** Helm's version, e.g. "v4.3.1". */
  version(): Promise<string>;
  install(opts: InstallOptions): Promise<ReleaseInfo>;
  upgrade(opts: UpgradeOptions): Promise<ReleaseInfo>;
  rollback(opts: RollbackOptions): Promise<void>;
  uninstall(opts: CommonOptions): Promise<void>;
  /** The current revision with its user-supplied values and notes. */
  get(namespace: string, name: string): Promise<ReleaseInfo>;
  history(namespace: string, name: string): Promise<RevisionInfo[]>;
  list(namespace: string): Promise<ReleaseInfo[]>;
}
