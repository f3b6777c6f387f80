import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus as Serving } from "../../../gen/grpc/health/v1/health_pb.js";
import { PaasError } from "../../../src/errors.ts";
import { createHarness } from "../../support/harness.ts";
import { failure } from "../../support/failure.ts";

describe("Health", () => {
  it("is SERVING when helm and the API answer, NOT_SERVING when either fails", async () => {
    const h = await createHarness();
    expect((await h.health.check({ service: "" })).status).toBe(Serving.SERVING);
    expect((await h.health.check({ service: "paas.v1.ReleaseService" })).status).toBe(Serving.SERVING);
    h.kube.pingError = new PaasError("unavailable", "connection refused");
    await h.monitor.check();
    expect((await h.health.check({ service: "" })).status).toBe(Serving.NOT_SERVING);
    h.kube.pingError = undefined;
    h.helm.errors.version = new Error("helm missing");
    await h.monitor.check();
    expect((await h.health.check({ service: "" })).status).toBe(Serving.NOT_SERVING);
  });

  it("is NOT_FOUND for an unknown service", async () => {
    const h = await createHarness();
    expect((await failure(h.health.check({ service: "no.Such" }))).code).toBe(Code.NotFound);
  });

  it("Watch sends the status, then changes, and NOT_SERVING then ends on shutdown", async () => {
    const h = await createHarness();
    const seen: Serving[] = [];
    const done = (async () => {
      for await (const m of h.health.watch({ service: "" })) {
        seen.push(m.status);
        if (seen.length === 1) {
          h.kube.pingError = new Error("down");
          await h.monitor.check();
        } else if (seen.length === 2) {
          h.kube.pingError = undefined;
          await h.monitor.check();
        } else if (seen.length === 3) {
          h.lifecycle.startDraining();
          h.monitor.notify();
        }
      }
    })();
    await done;
    expect(seen).toEqual([Serving.SERVING, Serving.NOT_SERVING, Serving.SERVING, Serving.NOT_SERVING]);
  });
});
