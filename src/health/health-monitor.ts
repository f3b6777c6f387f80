import type { Logger } from "pino";
import type { HelmClient } from "../helm/helm-client.ts";
import type { KubeClient } from "../kube/kube-types.ts";
import type { Lifecycle } from "../operations/lifecycle.ts";

/** HealthSnapshot is the last result of the background dependency checks. */
export interface HealthSnapshot {
  serving: boolean;
  helmVersion: string;
  helmError?: string;
  kubeError?: string;
  checkedAt: Date;
}

/**
 * HealthMonitor checks Helm (`helm version`) and the Kubernetes API in the background so
 * that probes answer from memory and never start processes or API calls themselves.
 */
export class HealthMonitor {
  private snapshot: HealthSnapshot = {
    serving: false,
    helmVersion: "",
    checkedAt: new Date(0),
    helmError: "not checked yet",
  };
  private readonly listeners = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;
  private readonly deps: {
    helm: HelmClient;
    kube: KubeClient;
    lifecycle: Lifecycle;
    logger: Logger;
    intervalMs: number;
  };

  constructor(deps: { helm: HelmClient; kube: KubeClient; lifecycle: Lifecycle; logger: Logger; intervalMs: number }) {
    this.deps = deps;
  }

  /** start runs a first check and then one every interval. */
  async start(): Promise<void> {
    await this.check();
    const loop = () => {
      this.timer = setTimeout(() => void this.check().finally(loop), this.deps.intervalMs);
      this.timer.unref();
    };
    loop();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** current is the last snapshot; never serving while the process drains. */
  current(): HealthSnapshot {
    return this.deps.lifecycle.draining ? { ...this.snapshot, serving: false } : this.snapshot;
  }

  /** subscribe calls fn after every check and on draining; returns an unsubscribe function. */
  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** notify tells subscribers that something changed (e.g. draining started). */
  notify(): void {
    for (const fn of this.listeners) fn();
  }

  /** check probes both dependencies once, in parallel, with a bound on each. */
  async check(): Promise<HealthSnapshot> {
    const bound = AbortSignal.timeout(Math.max(2000, Math.min(this.deps.intervalMs, 10_000)));
    const [helm, kube] = await Promise.allSettled([this.deps.helm.version(), this.deps.kube.ping(bound)]);
    const next: HealthSnapshot = {
      serving: helm.status === "fulfilled" && kube.status === "fulfilled",
      helmVersion: helm.status === "fulfilled" ? helm.value : this.snapshot.helmVersion,
      checkedAt: new Date(),
      ...(helm.status === "rejected" ? { helmError: message(helm.reason) } : {}),
      ...(kube.status === "rejected" ? { kubeError: message(kube.reason) } : {}),
    };
    if (next.serving !== this.snapshot.serving) {
      const { helmError, kubeError } = next;
      this.deps.logger[next.serving ? "info" : "warn"](
        { serving: next.serving, helmError, kubeError },
        "health changed",
      );
    }
    this.snapshot = next;
    this.notify();
    return next;
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
