import { execFile } from "node:child_process";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPaasClient, type Protocol } from "../../../clients/paas-client.ts";
import {
  ListReleasesRequestSchema,
  ListReleasesResponseSchema,
  ReleaseStatus,
  WatchEventKind,
} from "../../../gen/paas/v1/release_pb.js";
import { listen, type Listener } from "../../../src/server/listener.ts";
import { API_KEY, createHarness, managedNamespace } from "../../support/harness.ts";

const NS = "paas-ws-interop";
let server: Listener;
let h: Awaited<ReturnType<typeof createHarness>>;
let base: string;

beforeAll(async () => {
  h = await createHarness({ maxBodyBytes: 64 * 1024 });
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

const protocols: Array<[Protocol, "1.1" | "2", boolean]> = [
  ["connect", "1.1", false],
  ["connect", "2", true],
  ["grpc", "2", true],
  ["grpc-web", "1.1", false],
  ["grpc-web", "2", true],
];

describe.each(protocols)("%s over HTTP/%s (binary %s)", (protocol, httpVersion, binary) => {
  const client = () => createPaasClient({ baseUrl: base, apiKey: API_KEY, protocol, httpVersion, binary });

  it("serves unary calls", async () => {
    const res = await client().releases.getRelease({ namespace: NS, name: "web" });
    expect(res.release).toMatchObject({
      name: "web",
      revision: 1,
      status: ReleaseStatus.DEPLOYED,
      chartReference: "oci://r.example/c/nginx",
    });
  });

  it("answers errors with the right code", async () => {
    const err = await client()
      .releases.getRelease({ namespace: "kube-system", name: "web" })
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    expect(err?.code).toBe(Code.PermissionDenied);
    const unauth = await createPaasClient({
      baseUrl: base,
      apiKey: "wrong-wrong-wrong-wrong",
      protocol,
      httpVersion,
      binary,
    })
      .releases.getRelease({ namespace: NS, name: "web" })
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    expect(unauth?.code).toBe(Code.Unauthenticated);
  });

  it("streams server-side", async () => {
    h.kube.watchEvents = [{ kind: "snapshot", pods: [] }, { kind: "release_uninstalled" }];
    const kinds = [];
    for await (const m of client().releases.watchReleaseStatus({ namespace: NS, name: "web" })) kinds.push(m.kind);
    expect(kinds).toEqual([WatchEventKind.SNAPSHOT, WatchEventKind.RELEASE_UNINSTALLED]);
  });

  it("answers the health check without a key", async () => {
    const res = await createPaasClient({ baseUrl: base, protocol, httpVersion, binary }).health.check({ service: "" });
    expect(res.status).toBe(1);
  });

  it("answers NOT_FOUND for a service the health check does not know", async () => {
    const err = await createPaasClient({ baseUrl: base, protocol, httpVersion, binary })
      .health.check({ service: "no.such.Service" })
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    expect(err?.code).toBe(Code.NotFound);
    expect(err?.rawMessage).toBe("unknown service no.such.Service");
  });
});

describe("@grpc/grpc-js client", () => {
  function method<I extends DescMessage, O extends DescMessage>(path: string, input: I, output: O) {
    return {
      path,
      requestStream: false,
      responseStream: false,
      requestSerialize: (m: MessageInitShape<I>) => Buffer.from(toBinary(input, create(input, m))),
      requestDeserialize: (b: Buffer) => fromBinary(input, b),
      responseSerialize: (m: MessageShape<O>) => Buffer.from(toBinary(output, m)),
      responseDeserialize: (b: Buffer) => fromBinary(output, b),
    };
  }

  it("calls ListReleases with metadata and reads status codes", async () => {
    const Client = grpc.makeGenericClientConstructor(
      {
        listReleases: method(
          "/paas.v1.ReleaseService/ListReleases",
          ListReleasesRequestSchema,
          ListReleasesResponseSchema,
        ),
      },
      "ReleaseService",
    );
    const client = new Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure()) as grpc.Client &
      Record<string, (...args: unknown[]) => void>;
    const call = (ns: string, key: string) =>
      new Promise<{ err: grpc.ServiceError | null; res?: { releases: { name: string }[] } }>((resolve) => {
        const md = new grpc.Metadata();
        md.set("x-api-key", key);
        client.listReleases!(
          { namespace: ns },
          md,
          (err: grpc.ServiceError | null, res: { releases: { name: string }[] }) => resolve({ err, res }),
        );
      });
    const ok = await call(NS, API_KEY);
    expect(ok.err).toBeNull();
    expect(ok.res?.releases.map((r) => r.name)).toEqual(["web"]);
    expect((await call("kube-system", API_KEY)).err?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect((await call(NS, "nope-nope-nope-nope")).err?.code).toBe(grpc.status.UNAUTHENTICATED);
    client.close();
  });
});

describe("buf curl through reflection", () => {
  it("discovers the schema and calls the service over gRPC h2c", async () => {
    const { stdout } = await promisify(execFile)("node_modules/.bin/buf", [
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "-H",
      `x-api-key: ${API_KEY}`,
      "-d",
      JSON.stringify({ namespace: NS, name: "web" }),
      `${base}/paas.v1.ReleaseService/GetRelease`,
    ]);
    expect(JSON.parse(stdout).release).toMatchObject({ name: "web", status: "RELEASE_STATUS_DEPLOYED" });
  });

  it("lists the services", async () => {
    const { stdout } = await promisify(execFile)("node_modules/.bin/buf", [
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "--list-methods",
      base,
    ]);
    expect(stdout).toContain("paas.v1.ReleaseService/InstallRelease");
    expect(stdout).toContain("paas.v1.NamespaceService/CreateNamespace");
  });
});

describe("Connect JSON over plain HTTP: bad input", () => {
  const post = (path: string, body: string, key: string | null = API_KEY) =>
    fetch(`${base}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(key === null ? {} : { "x-api-key": key }) },
      body,
    });

  it("refuses unknown fields, wrong types and values that are not an object", async () => {
    for (const body of [
      JSON.stringify({ namespace: NS, name: "web", bogus: 1 }),
      JSON.stringify({ namespace: 5, name: "web" }),
      JSON.stringify({ namespace: NS, name: "web", chart: "oci://r.example/c/x", values: [1, 2] }),
      JSON.stringify({ namespace: NS, name: "web", chart: "oci://r.example/c/x", values: "a=b" }),
      "{not json",
    ]) {
      const res = await post("/paas.v1.ReleaseService/InstallRelease", body);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
    }
    expect(h.helm.verbs().filter((v) => v === "install")).toHaveLength(1); // only beforeAll's
  });

  it("refuses bodies over the limit with resource_exhausted", async () => {
    const res = await post(
      "/paas.v1.ReleaseService/InstallRelease",
      JSON.stringify({
        namespace: NS,
        name: "big",
        chart: "oci://r.example/c/x",
        values: { blob: "x".repeat(70 * 1024) },
      }),
    );
    expect(((await res.json()) as { code: string }).code).toBe("resource_exhausted");
    expect(h.helm.verbs().filter((v) => v === "install")).toHaveLength(1);
  });

  it("answers 401 without a key, with the reason", async () => {
    const res = await post("/paas.v1.ReleaseService/GetRelease", JSON.stringify({ namespace: NS, name: "web" }), null);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ code: "unauthenticated", message: "missing API key (x-api-key header)" });
  });

  it("serves /health, /healthz and /readyz without a key, and a JSON 404 elsewhere", async () => {
    const health = await fetch(`${base}/health`);
    const body = (await health.json()) as { status: string; timestamp: string };
    expect(body).toMatchObject({ status: "healthy", helm_version: "v4.3.1" });
    expect(Date.parse(body.timestamp)).not.toBeNaN();
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const missing = await fetch(`${base}/nope`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error_type: string }).error_type).toBe("not_found");
  });

  it("reports readiness false while draining", async () => {
    h.lifecycle.startDraining();
    try {
      expect((await fetch(`${base}/readyz`)).status).toBe(503);
      expect(((await (await fetch(`${base}/health`)).json()) as { status: string }).status).toBe("degraded");
    } finally {
      // The harness's lifecycle cannot be undone; this test runs last in the file.
    }
  });
});

describe("API docs on the same port", () => {
  it("serves /openapi.json and /docs without a key", async () => {
    const doc = await fetch(`${base}/openapi.json`);
    expect(doc.status).toBe(200);
    const body = (await doc.json()) as { openapi: string; paths: Record<string, unknown> };
    expect(body.openapi).toBe("3.1.0");
    expect(Object.keys(body.paths)).toContain("/api/releases/{namespace}/{name}");
    const page = await fetch(`${base}/docs`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
  });
});
