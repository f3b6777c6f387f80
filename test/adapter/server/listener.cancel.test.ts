import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ServerReflection, ServerReflectionRequestSchema } from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import { createPaasClient } from "../../../clients/paas-client.ts";
import { listen, type Listener } from "../../../src/server/listener.ts";
import { API_KEY, createHarness, managedNamespace } from "../../support/harness.ts";

// A client that stops a stream (grpcurl interrupted, a browser tab closed) cancels the call:
// it is logged as Canceled at info level, never as an Internal error.
const NS = "paas-ws-cancel";
let server: Listener;
let h: Awaited<ReturnType<typeof createHarness>>;
let base: string;

beforeAll(async () => {
  h = await createHarness();
  managedNamespace(h.cluster, NS);
  server = await listen(h.app.handler, "127.0.0.1", 0);
  base = `http://127.0.0.1:${server.port}`;
  await createPaasClient({ baseUrl: base, apiKey: API_KEY }).releases.installRelease({
    namespace: NS,
    name: "web",
    chart: "oci://r.example/c/nginx",
    version: "1.0.0",
  });
});

afterAll(() => {
  server.drain();
  server.stopAccepting();
  server.closeAll();
});

interface Line {
  level: number;
  msg: string;
  rpc?: string;
  code?: string;
}

/** rpcLine waits for the log line of the RPC `rpc` and returns it with every line logged at error level. */
async function rpcLine(rpc: string): Promise<{ line: Line; errors: Line[] }> {
  for (let i = 0; i < 100; i++) {
    const lines = h.logs.lines.map((l) => JSON.parse(l) as Line);
    const line = lines.find((l) => l.msg === "rpc" && l.rpc === rpc);
    if (line) return { line, errors: lines.filter((l) => l.level >= 50) };
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no log line for ${rpc}: ${h.logs.text}`);
}

describe("a client that cancels a stream", () => {
  it("reflection over gRPC, stopped mid-stream: Canceled, logged at info", async () => {
    h.logs.lines.length = 0;
    const reflection = createClient(ServerReflection, createGrpcTransport({ baseUrl: base }));
    const abort = new AbortController();
    let requests = 0;
    async function* ask() {
      requests++;
      yield create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } });
      // Keep the request stream open, as grpcurl does: the call ends only by the cancel.
      await new Promise(() => {});
    }
    const answers: unknown[] = [];
    await expect(
      (async () => {
        for await (const res of reflection.serverReflectionInfo(ask(), { signal: abort.signal })) {
          answers.push(res);
          abort.abort();
        }
      })(),
    ).rejects.toThrow();
    expect(answers).toHaveLength(1);
    expect(requests).toBe(1);
    const { line, errors } = await rpcLine("grpc.reflection.v1.ServerReflection/ServerReflectionInfo");
    expect(line).toMatchObject({ code: "Canceled", level: 30 });
    expect(errors).toEqual([]);
  });

  it("reflection over gRPC, the client killed mid-stream (grpcurl interrupted): Canceled, logged at info", async () => {
    h.logs.lines.length = 0;
    const session = http2.connect(base);
    const stream = session.request({
      ":method": "POST",
      ":path": "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      "content-type": "application/grpc",
      te: "trailers",
    });
    const msg = toBinary(
      ServerReflectionRequestSchema,
      create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } }),
    );
    const frame = Buffer.alloc(5 + msg.length);
    frame.writeUInt32BE(msg.length, 1);
    frame.set(msg, 5);
    stream.write(frame);
    // The first answer arrives; then the process dies: the connection just goes away.
    await new Promise((resolve) => stream.once("data", resolve));
    session.socket.destroy();
    const { line, errors } = await rpcLine("grpc.reflection.v1.ServerReflection/ServerReflectionInfo");
    expect(line).toMatchObject({ code: "Canceled", level: 30 });
    expect(errors).toEqual([]);
  });

  it("a release watch over gRPC-Web (HTTP/1.1), closed by the caller: Canceled, logged at info", async () => {
    h.logs.lines.length = 0;
    // The watch stays open after the snapshot (no further events); the caller closes it.
    h.kube.watchEvents = [{ kind: "snapshot", pods: [] }];
    h.kube.watchHold = true;
    const abort = new AbortController();
    const client = createPaasClient({ baseUrl: base, apiKey: API_KEY, protocol: "grpc-web", httpVersion: "1.1" });
    await expect(
      (async () => {
        for await (const _ of client.releases.watchReleaseStatus(
          { namespace: NS, name: "web" },
          { signal: abort.signal },
        ))
          abort.abort();
      })(),
    ).rejects.toThrow();
    const { line, errors } = await rpcLine("paas.v1.ReleaseService/WatchReleaseStatus");
    expect(line).toMatchObject({ code: "Canceled", level: 30 });
    expect(errors).toEqual([]);
  });
});
