import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { matcherOf, podMatchersFromManifest } from "../../../../src/kube/watch/workload-pods.ts";

// `helm template web podinfo --version 6.13.0` from the testbed's chart repository.
const podinfoManifest = readFileSync(
  new URL("../../../fixtures/kube/podinfo-6.13.0-manifest.yaml", import.meta.url),
  "utf8",
);

describe("podMatchersFromManifest", () => {
  it("finds podinfo's Deployment selector and skips services and hook pods", () => {
    expect(podMatchersFromManifest(podinfoManifest)).toEqual([
      { selector: { matchLabels: { "app.kubernetes.io/name": "web-podinfo" } } },
    ]);
  });

  it("handles every workload kind, and skips junk", () => {
    const manifest = [
      "---\n# Source: x/templates/empty.yaml\n",
      "---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  selector:\n    matchLabels: {app: db}\n    matchExpressions: [{key: tier, operator: In, values: [data]}]\n",
      "---\napiVersion: batch/v1\nkind: Job\nmetadata: {name: migrate}\nspec:\n  template:\n    metadata:\n      labels: {job: migrate}\n",
      "---\napiVersion: batch/v1\nkind: CronJob\nmetadata: {name: backup}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        metadata:\n          labels: {cron: backup}\n",
      "---\napiVersion: v1\nkind: Pod\nmetadata: {name: lonely}\n",
      "---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: bad}\nspec:\n  selector: {}\n",
      "---\n: : not yaml [\n",
      "---\njust a string\n",
    ].join("");
    expect(podMatchersFromManifest(manifest)).toEqual([
      {
        selector: { matchLabels: { app: "db" }, matchExpressions: [{ key: "tier", operator: "In", values: ["data"] }] },
      },
      { selector: { matchLabels: { job: "migrate" } } },
      { selector: { matchLabels: { cron: "backup" } } },
      { podName: "lonely" },
    ]);
    expect(podMatchersFromManifest("")).toEqual([]);
  });

  it("ignores hooks", () => {
    expect(
      matcherOf({ kind: "Pod", metadata: { name: "t", annotations: { "helm.sh/hook": "test" } } }),
    ).toBeUndefined();
  });
});
