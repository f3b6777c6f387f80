import type { KubeClient, NamespaceOptions, QuotaSpec } from "../kube/kube-types.ts";
import { PaasError } from "../errors.ts";
import { OperationQueue } from "./operation-queue.ts";
import type { StepSink } from "../domain/steps.ts";

/** DEFAULT_QUOTA is what a namespace gets when the caller names no limits. */
export const DEFAULT_QUOTA: QuotaSpec = { cpu: "2", memory: "4Gi", storage: "20Gi" };

/** NamespaceManager is the namespace logic the namespace and release verbs share. */
export class NamespaceManager {
  private readonly kube: KubeClient;
  // Its own queue: namespace calls are short API calls and must not wait for helm slots
  // (an install that creates its namespace holds one already).
  private readonly queue = new OperationQueue(16, "namespace");

  constructor(kube: KubeClient) {
    this.kube = kube;
  }

  /** ensure creates the namespace with its quota, or updates the quota; serialized per namespace. */
  ensure(name: string, quota: QuotaSpec, options: NamespaceOptions = {}) {
    return this.queue.run(`namespace:${name}`, () => this.kube.ensureNamespace(name, quota, options));
  }

  /** ensureDefault creates the namespace with the default quota unless it exists already. */
  async ensureDefault(name: string, steps?: StepSink): Promise<void> {
    await this.queue.run(`namespace:${name}`, async () => {
      try {
        await this.kube.getNamespace(name);
      } catch (err) {
        if (!(err instanceof PaasError) || err.kind !== "not_found") throw err;
        steps?.begin("namespace", `creating ${name} with the default quota`);
        await this.kube.ensureNamespace(name, DEFAULT_QUOTA);
        steps?.end("namespace");
      }
    });
  }

  /** requireManaged fails with NOT_FOUND unless the namespace exists and is managed by this service. */
  async requireManaged(name: string): Promise<void> {
    await this.kube.getNamespace(name);
  }
}
