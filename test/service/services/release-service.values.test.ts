import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { JsonObject } from "../../../src/domain/release.ts";
import { codeOf } from "../../support/failure.ts";
import { createHarness, managedNamespace } from "../../support/harness.ts";
import { manyKeys, nested } from "../../support/values.ts";

const NS = "paas-ws-acme";

describe("values limits on the request path", () => {
  it("refuses oversize, too deep and too many-keyed values before any helm call", async () => {
    const h = await createHarness({ valuesLimits: { maxBytes: 2048, maxDepth: 4, maxKeys: 50 } });
    managedNamespace(h.cluster, NS);
    const install = (values: JsonObject) =>
      codeOf(h.releases.installRelease({ namespace: NS, name: "web", chart: "oci://r.example/c/nginx", values }));
    expect(await install({ s: "x".repeat(3000) })).toBe(Code.ResourceExhausted);
    expect(await install(manyKeys(51))).toBe(Code.ResourceExhausted);
    expect(await install(nested(5))).toBe(Code.InvalidArgument);
    expect(h.helm.verbs()).toEqual(["version"]);
    expect(h.kube.calls.filter((c) => c !== "ping")).toEqual([]);
    // Within the limits it installs; then the same limits guard upgrades.
    expect(await install(nested(4))).toBe("ok");
    const upgrade = (values: JsonObject) => codeOf(h.releases.upgradeRelease({ namespace: NS, name: "web", values }));
    expect(await upgrade({ s: "x".repeat(3000) })).toBe(Code.ResourceExhausted);
    expect(await upgrade(nested(5))).toBe(Code.InvalidArgument);
    expect(h.helm.verbs()).toEqual(["version", "install"]);
  });

  it("applies the defaults when none are configured", async () => {
    const h = await createHarness();
    managedNamespace(h.cluster, NS);
    const err = await h.releases
      .installRelease({ namespace: NS, name: "web", chart: "oci://r.example/c/nginx", values: manyKeys(10_001) })
      .catch((e) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((err as ConnectError).rawMessage).toBe("values have more than 10000 keys");
    expect(h.helm.verbs()).toEqual(["version"]);
  });

  it("passes keys full of , = \\ . literally to helm (as data, not --set)", async () => {
    const h = await createHarness();
    managedNamespace(h.cluster, NS);
    const values = { podAnnotations: { "a.b,c=d\\e": "x,y=z\\w.v" }, "top.level,key=1\\2": [1, "two"] };
    await h.releases.installRelease({ namespace: NS, name: "web", chart: "oci://r.example/c/nginx", values });
    expect(h.helm.calls.find((c) => c.verb === "install")!.args).toMatchObject({ values });
    expect((await h.releases.getRelease({ namespace: NS, name: "web" })).release?.values).toEqual(values);
  });
});
