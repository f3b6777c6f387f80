import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createHarness, managedNamespace } from "../../support/harness.ts";
import { codeOf } from "../../support/failure.ts";

describe("namespace prefix interceptor", () => {
  const outside = ["kube-system", "default", "paas-wsx", "xpaas-ws-a"];
  for (const ns of outside) {
    it(`refuses namespace "${ns}" with PERMISSION_DENIED before any side effect`, async () => {
      const h = await createHarness();
      expect(
        await codeOf(h.releases.installRelease({ namespace: ns, name: "web", chart: "oci://r.example/c/nginx" })),
      ).toBe(Code.PermissionDenied);
      expect(await codeOf(h.namespaces.createNamespace({ name: ns }))).toBe(Code.PermissionDenied);
      expect(h.helm.verbs()).toEqual(["version"]);
      expect(h.kube.calls.filter((c) => c !== "ping")).toEqual([]);
    });
  }

  const malformed = [
    "",
    "paas-ws-",
    "PAAS-WS-A",
    "paas-ws-a/b",
    "paas-ws-..",
    "paas-ws-a--b",
    "paas-ws-ä",
    `paas-ws-${"a".repeat(60)}`,
    "paas-ws-a.b",
    "-paas-ws-a",
    "paas-ws-a ",
  ];
  for (const ns of malformed) {
    it(`refuses malformed namespace ${JSON.stringify(ns)} with INVALID_ARGUMENT`, async () => {
      const h = await createHarness();
      expect(await codeOf(h.releases.getRelease({ namespace: ns, name: "web" }))).toBe(Code.InvalidArgument);
      expect(h.kube.calls.filter((c) => c !== "ping")).toEqual([]);
    });
  }

  const badNames = ["", "Web", "web/x", "..", "a..b", "we--b", "wéb", "a".repeat(54), "-web", "web-", "--set"];
  for (const name of badNames) {
    it(`refuses release name ${JSON.stringify(name)} with INVALID_ARGUMENT`, async () => {
      const h = await createHarness();
      managedNamespace(h.cluster, "paas-ws-a");
      expect(
        await codeOf(h.releases.installRelease({ namespace: "paas-ws-a", name, chart: "oci://r.example/c/nginx" })),
      ).toBe(Code.InvalidArgument);
      expect(h.helm.verbs()).toEqual(["version"]);
    });
  }

  it("accepts a 53-character release name and a 63-character namespace", async () => {
    const h = await createHarness();
    const ns = `paas-ws-${"a".repeat(55)}`;
    managedNamespace(h.cluster, ns);
    const res = await h.releases.installRelease({
      namespace: ns,
      name: "a".repeat(53),
      chart: "oci://r.example/c/nginx",
    });
    expect(res.release?.revision).toBe(1);
  });

  it("checks the namespace of a streaming request", async () => {
    const h = await createHarness();
    const stream = h.releases.watchReleaseStatus({ namespace: "kube-system", name: "web" });
    await expect(async () => {
      for await (const _ of stream) void _;
    }).rejects.toMatchObject({ code: Code.PermissionDenied });
    expect(h.kube.calls.filter((c) => c !== "ping")).toEqual([]);
  });

  it("answers errors with the reason, not a generic message", async () => {
    const h = await createHarness();
    const err = await h.releases
      .getRelease({ namespace: "kube-system", name: "web" })
      .catch((e) => ConnectError.from(e));
    expect((err as ConnectError).rawMessage).toBe('namespace "kube-system" is outside the managed prefix "paas-ws-"');
  });
});
