import { readFileSync } from "node:fs";
import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { formatAge, samePodInfo, summarizePod } from "../../../../src/kube/watch/pod-status.ts";

// Fixtures are raw API JSON (timestamps as strings), the shape our watch stream delivers.
function fixture(name: string): V1Pod {
  return JSON.parse(
    readFileSync(new URL(`../../../fixtures/kube/pods/${name}.json`, import.meta.url), "utf8"),
  ) as V1Pod;
}

describe("summarizePod", () => {
  it("summarises a running, ready pod", () => {
    expect(summarizePod(fixture("running-ready"))).toEqual({
      name: "web-podinfo-7c9d8f6b5-x2k4p",
      phase: "Running",
      readyContainers: 1,
      totalContainers: 1,
      restarts: 0,
      started: new Date("2025-11-20T10:00:01Z"),
      reasons: [],
      node: "kwok-node-0",
      ready: true,
    });
  });

  it("accepts timestamps already deserialized to Date (list calls)", () => {
    const pod = fixture("running-ready");
    pod.status!.startTime = new Date("2025-11-20T10:00:01Z");
    expect(summarizePod(pod).started).toEqual(new Date("2025-11-20T10:00:01Z"));
  });

  it("reports a crash loop with how the last run ended, and sums restarts", () => {
    const info = summarizePod(fixture("crashloop-oomkilled"));
    expect(info.reasons).toEqual(["CrashLoopBackOff", "OOMKilled"]);
    expect(info.restarts).toBe(8);
    expect(info.readyContainers).toBe(1);
    expect(info.totalContainers).toBe(2);
    expect(info.ready).toBe(false);
    // The metrics container restarted once but runs fine now: its old "Error" is not a reason.
    expect(info.reasons).not.toContain("Error");
  });

  it("reports image pull failures", () => {
    const info = summarizePod(fixture("image-pull-backoff"));
    expect(info).toMatchObject({
      phase: "Pending",
      reasons: ["ImagePullBackOff"],
      readyContainers: 0,
      totalContainers: 1,
    });
  });

  it("reports CreateContainerConfigError", () => {
    expect(summarizePod(fixture("config-error")).reasons).toEqual(["CreateContainerConfigError"]);
  });

  it("reports an unschedulable pod without node or start time", () => {
    const info = summarizePod(fixture("unschedulable"));
    expect(info).toMatchObject({
      phase: "Pending",
      reasons: ["Unschedulable"],
      node: "",
      readyContainers: 0,
      totalContainers: 1,
    });
    expect(info.started).toBeUndefined();
  });

  it("reports an evicted pod", () => {
    const info = summarizePod(fixture("evicted"));
    expect(info.phase).toBe("Failed");
    expect(info.reasons[0]).toBe("Evicted");
    expect(info.reasons).toContain("ContainerStatusUnknown");
    // A terminal pod being deleted is not "Terminating".
    const deleted = fixture("evicted");
    deleted.metadata!.deletionTimestamp = "2025-11-20T00:00:00Z" as unknown as Date;
    expect(summarizePod(deleted).reasons).not.toContain("Terminating");
  });

  it("reports Terminating for a pod being deleted", () => {
    const info = summarizePod(fixture("terminating"));
    expect(info.reasons).toEqual(["Terminating"]);
    expect(info.ready).toBe(true);
  });

  it("counts sidecars and reports init container failures with an Init: prefix", () => {
    const info = summarizePod(fixture("init-crash-and-sidecar"));
    expect(info.totalContainers).toBe(2); // app + the restartable "proxy" init container
    expect(info.readyContainers).toBe(1); // the proxy sidecar
    expect(info.restarts).toBe(3); // init restarts count while initializing
    expect(info.reasons).toEqual(["Init:CrashLoopBackOff", "Init:Error", "PodInitializing"]);
  });

  it("explains a running pod that is not ready with the Ready condition's reason", () => {
    const pod = fixture("running-ready");
    pod.status!.conditions = pod.status!.conditions!.map((c) =>
      c.type === "Ready" ? { ...c, status: "False", reason: "ReadinessGatesNotReady" } : c,
    );
    const info = summarizePod(pod);
    expect(info.ready).toBe(false);
    expect(info.reasons).toEqual(["ReadinessGatesNotReady"]);
  });

  it("describes a pod with no status at all (just created)", () => {
    const info = summarizePod({ metadata: { name: "p" }, spec: { containers: [{ name: "c" }] } });
    expect(info).toEqual({
      name: "p",
      phase: "Unknown",
      readyContainers: 0,
      totalContainers: 1,
      restarts: 0,
      started: undefined,
      reasons: [],
      node: "",
      ready: false,
    });
  });
});

describe("samePodInfo", () => {
  it("ignores nothing a caller can see", () => {
    const a = summarizePod(fixture("running-ready"));
    expect(samePodInfo(a, summarizePod(fixture("running-ready")))).toBe(true);
    expect(samePodInfo(a, { ...a, restarts: 1 })).toBe(false);
    expect(samePodInfo(a, { ...a, reasons: ["X"] })).toBe(false);
    expect(samePodInfo(a, { ...a, started: undefined })).toBe(false);
    expect(samePodInfo(a, { ...a, ready: false })).toBe(false);
  });
});

describe("formatAge", () => {
  const now = new Date("2025-11-20T12:00:00Z");
  const ago = (ms: number) => formatAge(new Date(now.getTime() - ms), now);
  const s = 1000;
  const m = 60 * s;
  const h = 60 * m;
  const d = 24 * h;

  it.each([
    [0, "0s"],
    [45 * s, "45s"],
    [119 * s, "119s"],
    [2 * m, "2m"],
    [5 * m + 30 * s, "5m30s"],
    [10 * m + 59 * s, "10m"],
    [179 * m, "179m"],
    [3 * h, "3h"],
    [3 * h + 25 * m, "3h25m"],
    [8 * h + 30 * m, "8h"],
    [47 * h, "47h"],
    [2 * d, "2d"],
    [2 * d + 4 * h, "2d4h"],
    [8 * d + 4 * h, "8d"],
    [400 * d, "400d"],
    [3 * 365 * d + 10 * d, "3y10d"],
    [9 * 365 * d, "9y"],
  ])("%i ms → %s", (ms, want) => {
    expect(ago(ms)).toBe(want);
  });

  it("tolerates a second of clock skew and flags more", () => {
    expect(ago(-900)).toBe("0s");
    expect(ago(-1500)).toBe("0s");
    expect(ago(-2500)).toBe("<invalid>");
  });
});
