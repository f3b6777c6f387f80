import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HttpStatusError } from "../../../../src/kube/api/api-errors.ts";
import { watchStream } from "../../../../src/kube/watch/watch-stream.ts";
import { FakeApiServer, startWatch, status } from "../../../support/fake-apiserver.ts";

// watchStream against a plain-HTTP fake API server.
let fake: FakeApiServer;

beforeEach(async () => {
  fake = await FakeApiServer.start();
});
afterEach(async () => {
  await fake.close();
});

describe("watchStream", () => {
  it("turns a non-200 answer into an HttpStatusError with the Status", async () => {
    fake.handler = (_req, res) => status(res, 410, "Expired", "too old resource version: 1 (5)");
    const err = await (async () => {
      for await (const _ of watchStream(
        fake.kubeConfig(),
        "/api/v1/pods",
        { resourceVersion: "1" },
        new AbortController().signal,
      ))
        void _;
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpStatusError);
    expect((err as HttpStatusError).code).toBe(410);
  });

  it("ends the stream on a silent connection after the idle timeout", async () => {
    fake.handler = (_req, res) => void startWatch(res);
    const t0 = Date.now();
    for await (const _ of watchStream(fake.kubeConfig(), "/api/v1/pods", {}, new AbortController().signal, {
      idleTimeoutMs: 150,
    }))
      void _;
    expect(Date.now() - t0).toBeLessThan(1000);
    for (let i = 0; i < 50 && fake.open > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(fake.open).toBe(0);
  });

  it("fails when the server never answers the watch request", async () => {
    fake.handler = () => {};
    const err = await (async () => {
      for await (const _ of watchStream(fake.kubeConfig(), "/api/v1/pods", {}, new AbortController().signal, {
        idleTimeoutMs: 150,
      }))
        void _;
    })().catch((e: unknown) => e);
    expect((err as Error).name).toBe("TimeoutError");
  });

  it("parses events split across chunks", async () => {
    fake.handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      const line = JSON.stringify({ type: "ADDED", object: { metadata: { name: "a" } } }) + "\n";
      res.write(line.slice(0, 10));
      setTimeout(
        () => res.end(line.slice(10) + JSON.stringify({ type: "DELETED", object: { metadata: { name: "a" } } }) + "\n"),
        20,
      );
    };
    const got: string[] = [];
    for await (const ev of watchStream(fake.kubeConfig(), "/api/v1/pods", {}, new AbortController().signal))
      got.push(ev.type);
    expect(got).toEqual(["ADDED", "DELETED"]);
  });
});
