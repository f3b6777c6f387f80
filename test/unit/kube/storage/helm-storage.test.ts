import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import type { V1Pod, V1Secret } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { PaasError } from "../../../../src/errors.ts";
import {
  decodeReleaseData,
  decodeStorageSecret,
  encodeReleaseData,
  HELM_SECRET_TYPE,
  newestStorageSecret,
  parseReleaseJsonExact,
  releaseInfoFromJson,
  secretRevision,
  storedReleaseFromSecret,
} from "../../../../src/kube/storage/helm-storage.ts";
import { summarizePod } from "../../../../src/kube/watch/pod-status.ts";
import { isReleasePod } from "../../../../src/kube/watch/release-pods.ts";
import { podMatchersFromManifest } from "../../../../src/kube/watch/workload-pods.ts";
import { helmJson, helmText } from "../../../support/helm-release-data.ts";

// Encodes like Helm's encodeRelease (pkg/storage/driver/util.go): gzip at best compression,
// then base64; the Secret's JSON form base64-encodes the data value once more.
function helmEncode(release: unknown, gzip = true): string {
  const json = Buffer.from(JSON.stringify(release));
  const helmText = (gzip ? gzipSync(json, { level: 9 }) : json).toString("base64");
  return Buffer.from(helmText).toString("base64");
}

function helmRelease(version: number, status: string, extra: Record<string, unknown> = {}) {
  return {
    name: "web",
    namespace: "paas-ws-acme",
    version,
    info: {
      first_deployed: "2025-11-20T10:00:00.123456789Z",
      last_deployed: "2025-11-20T10:05:00.5Z",
      description: version === 1 ? "Install complete" : "Upgrade complete",
      status,
      notes: "1. Get the application URL",
    },
    chart: {
      metadata: { name: "podinfo", version: "6.13.0", appVersion: "6.13.0", apiVersion: "v2" },
      templates: [{ name: "templates/deployment.yaml", data: "YXBpVmVyc2lvbjogYXBwcy92MQ==" }],
      values: { replicaCount: 1 },
    },
    config: { replicaCount: 2, ui: { message: "hi" } },
    manifest: "---\n# Source: podinfo/templates/deployment.yaml\n",
    ...extra,
  };
}

function storageSecret(
  version: number,
  status: string,
  opts: { labels?: Record<string, string>; release?: unknown } = {},
): V1Secret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    type: HELM_SECRET_TYPE,
    metadata: {
      name: `sh.helm.release.v1.web.v${version}`,
      namespace: "paas-ws-acme",
      uid: `uid-${version}`,
      resourceVersion: String(1000 + version),
      labels: { name: "web", owner: "helm", status, version: String(version), ...opts.labels },
    },
    data: { release: helmEncode(opts.release ?? helmRelease(version, status)) },
  };
}

describe("decodeReleaseData", () => {
  it("decodes the double base64 + gzip encoding", async () => {
    expect(await decodeReleaseData(helmEncode({ name: "x", version: 3 }))).toEqual({ name: "x", version: 3 });
  });

  it("decodes releases stored before Helm compressed them", async () => {
    expect(await decodeReleaseData(helmEncode({ name: "old" }, false))).toEqual({ name: "old" });
  });

  it("refuses to inflate past the cap (decompression bomb)", async () => {
    const bomb = Buffer.from(gzipSync(Buffer.alloc(8 * 1024 * 1024, 0x20), { level: 9 }).toString("base64")).toString(
      "base64",
    );
    expect(bomb.length).toBeLessThan(64 * 1024); // tiny on the wire…
    const err = await decodeReleaseData(bomb, 1024 * 1024).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PaasError);
    expect((err as PaasError).kind).toBe("internal");
    expect((err as PaasError).message).toMatch(/exceeds 1048576 bytes/);
  });

  it("reports corrupt data as internal", async () => {
    const notGzip = Buffer.from(Buffer.from([0x1f, 0x8b, 0x08, 0, 1, 2, 3, 4]).toString("base64")).toString("base64");
    await expect(decodeReleaseData(notGzip)).rejects.toMatchObject({
      kind: "internal",
      message: "stored release is not valid gzip",
    });
    await expect(
      decodeReleaseData(Buffer.from(Buffer.from("{nope").toString("base64")).toString("base64")),
    ).rejects.toMatchObject({
      kind: "internal",
    });
  });
});

describe("releaseInfoFromJson", () => {
  it("maps Helm's release JSON", () => {
    expect(releaseInfoFromJson(helmRelease(2, "deployed"))).toEqual({
      name: "web",
      namespace: "paas-ws-acme",
      revision: 2,
      status: "deployed",
      chart: "podinfo",
      chartVersion: "6.13.0",
      appVersion: "6.13.0",
      updated: new Date("2025-11-20T10:05:00.5Z"),
      description: "Upgrade complete",
      values: { replicaCount: 2, ui: { message: "hi" } },
      notes: "1. Get the application URL",
    });
  });

  it("treats Go's zero time, missing config and unknown statuses gracefully", () => {
    const info = releaseInfoFromJson(
      { name: "a", version: 1, info: { status: "weird", last_deployed: "0001-01-01T00:00:00Z" } },
      "ns",
    );
    expect(info).toMatchObject({ namespace: "ns", status: "unknown", values: {}, chart: "", notes: "" });
    expect(info.updated).toBeUndefined();
    expect(releaseInfoFromJson({ config: null }).values).toEqual({});
  });

  it("rejects non-objects", () => {
    expect(() => releaseInfoFromJson([])).toThrow(PaasError);
  });
});

describe("storage secrets", () => {
  it("decodes a secret with its labels, custom --labels included", async () => {
    const stored = await storedReleaseFromSecret(storageSecret(1, "deployed", { labels: { team: "blue" } }));
    expect(stored.release).toMatchObject({ name: "web", revision: 1, status: "deployed", chart: "podinfo" });
    expect(stored.labels).toEqual({ name: "web", owner: "helm", status: "deployed", version: "1", team: "blue" });
  });

  it("picks the highest revision by number, not by string order", () => {
    const secrets = [storageSecret(9, "superseded"), storageSecret(10, "deployed"), storageSecret(2, "superseded")];
    expect(newestStorageSecret(secrets)?.metadata?.name).toBe("sh.helm.release.v1.web.v10");
    expect(newestStorageSecret([])).toBeUndefined();
  });

  it("falls back to the name suffix when the version label is missing", () => {
    const s = storageSecret(7, "deployed");
    delete s.metadata!.labels!["version"];
    expect(secretRevision(s)).toBe(7);
  });

  it("ignores Secrets that are not Helm release records", () => {
    const foreign = { ...storageSecret(99, "deployed"), type: "Opaque" };
    expect(newestStorageSecret([foreign, storageSecret(1, "deployed")])?.metadata?.name).toBe(
      "sh.helm.release.v1.web.v1",
    );
  });

  it("fails clearly on a record without data", async () => {
    const s = storageSecret(1, "deployed");
    s.data = {};
    await expect(storedReleaseFromSecret(s)).rejects.toMatchObject({ kind: "internal" });
  });
});

describe("secrets recorded from the testbed cluster", () => {
  const load = (name: string) =>
    JSON.parse(readFileSync(new URL(`../../../fixtures/kube/recorded/${name}`, import.meta.url), "utf8")) as {
      items: V1Secret[];
    };

  it("decodes Helm 4's storage (install, then upgrade with --labels team=blue)", async () => {
    const { items } = load("helm4-web-secrets.json");
    const newest = newestStorageSecret(items)!;
    const { stored, manifest } = await decodeStorageSecret(newest);
    expect(stored.release).toMatchObject({
      name: "web",
      revision: 2,
      status: "deployed",
      chart: "podinfo",
      chartVersion: "6.14.1",
      appVersion: "6.14.1",
      description: "Upgrade complete",
      values: { replicaCount: 2, ui: { message: "hello" } },
    });
    expect(stored.release.namespace).toMatch(/^paas-ws-it-record-/);
    expect(stored.release.updated).toBeInstanceOf(Date);
    expect(stored.release.notes).toContain("podinfo");
    expect(stored.labels).toMatchObject({ owner: "helm", name: "web", status: "deployed", version: "2", team: "blue" });
    // The manifest tells which pods the release runs (podinfo labels them by name only).
    expect(podMatchersFromManifest(manifest)).toEqual([
      { selector: { matchLabels: { "app.kubernetes.io/name": "web-podinfo" } } },
    ]);
    const pod = JSON.parse(
      readFileSync(new URL("../../../fixtures/kube/recorded/kwok-podinfo-pod.json", import.meta.url), "utf8"),
    ) as V1Pod;
    expect(isReleasePod(pod, "web", podMatchersFromManifest(manifest))).toBe(true);
    expect(summarizePod(pod)).toMatchObject({
      phase: "Running",
      ready: true,
      readyContainers: 1,
      totalContainers: 1,
      reasons: [],
    });
  });

  it("decodes Helm 3's storage", async () => {
    const stored = await storedReleaseFromSecret(newestStorageSecret(load("helm3-legacy-secrets.json").items)!);
    expect(stored.release).toMatchObject({
      name: "legacy",
      revision: 1,
      status: "deployed",
      chartVersion: "6.13.0",
      values: {},
      description: "Install complete",
    });
    expect(stored.release.updated).toBeInstanceOf(Date);
  });
});

describe("pendingSince (releaseInfoFromJson)", () => {
  it("is last_deployed for a pending revision, first_deployed when that is unset, absent otherwise", () => {
    const upgrade = releaseInfoFromJson(JSON.parse(helmJson(2, "pending-upgrade")));
    expect(upgrade.pendingSince).toEqual(new Date("2026-01-12T09:30:00.5Z"));
    const install = releaseInfoFromJson({
      name: "web",
      info: { status: "pending-install", first_deployed: "2026-01-10T08:00:00Z", last_deployed: "" },
    });
    expect(install.pendingSince).toEqual(new Date("2026-01-10T08:00:00Z"));
    const rollback = releaseInfoFromJson({ name: "web", info: { status: "pending-rollback" } });
    expect(rollback.status).toBe("pending-rollback");
    expect(rollback.pendingSince).toBeUndefined();
    const deployed = releaseInfoFromJson(JSON.parse(helmJson(2, "deployed")));
    expect("pendingSince" in deployed).toBe(false);
  });
});

describe("encodeReleaseData / parseReleaseJsonExact", () => {
  it("round-trips Helm's JSON, numbers written back as stored", async () => {
    const text = helmJson(3, "deployed");
    const again = JSON.stringify(parseReleaseJsonExact(text));
    expect(again).toContain('"replicas":12345678901234567890');
    expect(again).toContain('"ratio":1.50');
    expect(again).toContain('"tiny":1e-7');
    const data = await encodeReleaseData(again);
    expect(helmText(data)).toBe(again);
    // gzip magic inside the inner base64, as Helm writes it.
    expect(Buffer.from(Buffer.from(data, "base64").toString("latin1"), "base64").subarray(0, 3)).toEqual(
      Buffer.from([0x1f, 0x8b, 0x08]),
    );
    expect(await decodeReleaseData(data)).toEqual(JSON.parse(text));
  });
});
