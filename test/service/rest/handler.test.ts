import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { PaasError } from "../../../src/errors.ts";
import { listen, type Listener } from "../../../src/server/listener.ts";
import { API_KEY, createHarness, managedNamespace } from "../../support/harness.ts";

// The old FastAPI operator's REST contract, served by the real request path (createApp over
// fake adapters) on a real port: every row of the table and every error status.

const NS = "paas-ws-acme";
const OCI = "oci://registry.example/bitnamicharts/postgresql";
const REPO = "https://charts.example.test/podinfo";
const RELEASE_KEYS = [
  "name",
  "namespace",
  "revision",
  "status",
  "chart",
  "app_version",
  "updated",
  "description",
  "values",
];
const MUTATING_HELM = ["install", "upgrade", "rollback", "uninstall"];

const listeners: Listener[] = [];
afterAll(() => {
  for (const l of listeners) {
    l.stopAccepting();
    l.closeAll();
  }
});

type Harness = Awaited<ReturnType<typeof createHarness>>;

/** setup starts the real request path on a loopback port, with a managed namespace. */
async function setup(overrides: Parameters<typeof createHarness>[0] = {}) {
  const h = await createHarness(overrides);
  managedNamespace(h.cluster, NS);
  const server = await listen(h.app.handler, "127.0.0.1", 0);
  listeners.push(server);
  const base = `http://127.0.0.1:${server.port}`;
  return { h, base, port: server.port, ...clientFor(base) };
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

function clientFor(base: string) {
  /** call is the REST caller: JSON body, x-api-key unless told otherwise. */
  const call = async (
    method: string,
    path: string,
    body?: unknown,
    opts: { key?: string | null; headers?: Record<string, string> } = {},
  ): Promise<Answer> => {
    const key = opts.key === undefined ? API_KEY : opts.key;
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        ...(key === null ? {} : { "x-api-key": key }),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...opts.headers,
      },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
  };
  /** connect calls the same RPC as Connect JSON. */
  const connect = async (rpc: string, body: unknown) => {
    const res = await fetch(`${base}/paas.v1.${rpc}`, {
      method: "POST",
      headers: { "x-api-key": API_KEY, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as any };
  };
  return { call, connect };
}

/** raw sends a request with node:http: the path and header names go out exactly as given. */
function raw(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string | Buffer,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (text += d));
      res.on("end", () => {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === "string") h.set(k, v);
        resolve({ status: res.statusCode ?? 0, headers: h, text, json });
      });
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** rawBytes writes an HTTP/1.1 request byte for byte (e.g. raw UTF-8 in the request line). */
function rawBytes(port: number, request: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => socket.write(request));
    let out = "";
    socket.on("data", (d) => (out += d.toString("latin1")));
    socket.on("end", () => resolve(out));
    socket.on("error", reject);
  });
}

function mutations(h: Harness): string[] {
  return [
    ...h.helm.verbs().filter((v) => MUTATING_HELM.includes(v)),
    ...h.kube.calls.filter((c) => /^(ensureNamespace|deleteNamespace)/.test(c)),
  ];
}

function expectError(a: Answer, status: number, errorType: string, detail?: string | RegExp): void {
  expect(a.status, a.text).toBe(status);
  expect(a.headers.get("content-type")).toBe("application/json");
  expect(typeof a.json?.detail).toBe("string");
  expect(a.json.detail.length).toBeGreaterThan(0);
  expect(a.json.error_type).toBe(errorType);
  if (typeof detail === "string") expect(a.json.detail).toBe(detail);
  else if (detail) expect(a.json.detail).toMatch(detail);
}

async function installed(s: Awaited<ReturnType<typeof setup>>, name = "web", extra: Record<string, unknown> = {}) {
  const a = await s.call("POST", "/api/releases", {
    namespace: NS,
    name,
    chart: OCI,
    version: "17.1.0",
    values: { replicaCount: 1 },
    ...extra,
  });
  expect(a.status, a.text).toBe(201);
  return a;
}

describe("the table: every row", () => {
  it("GET /health answers 200 without a key", async () => {
    const s = await setup();
    const a = await s.call("GET", "/health", undefined, { key: null });
    expect(a.status).toBe(200);
    expect(a.json).toMatchObject({ status: "healthy", helm_version: "v4.3.1" });
    expect(new Date(a.json.timestamp).toISOString()).toBe(a.json.timestamp);
  });

  it("POST /api/releases installs an OCI chart without repo_url: 201 and the release", async () => {
    const s = await setup();
    const a = await s.call("POST", "/api/releases", {
      namespace: NS,
      name: "db",
      chart: OCI,
      version: "17.1.0",
      values: { auth: { database: "odoo" } },
    });
    expect(a.status).toBe(201);
    expect(a.json).toEqual({
      name: "db",
      namespace: NS,
      revision: 1,
      status: "deployed",
      chart: "postgresql",
      app_version: "17.1.0",
      updated: "2026-11-21T10:00:00.000Z",
      description: "Install complete",
      values: { auth: { database: "odoo" } },
      chart_version: "17.1.0",
      notes: "",
      chart_reference: OCI,
      repo_url: "",
    });
    const install = s.h.helm.calls.find((c) => c.verb === "install")!.args as Record<string, any>;
    expect(install).toMatchObject({
      namespace: NS,
      name: "db",
      chart: { ref: OCI, version: "17.1.0" },
      values: { auth: { database: "odoo" } },
      wait: false,
      timeoutSeconds: 300,
    });
    expect(install.chart.repoUrl).toBeUndefined();
  });

  it("POST /api/releases installs an HTTP-repository chart with repo_url, create_namespace, wait and timeout", async () => {
    const s = await setup();
    const a = await s.call("POST", "/api/releases", {
      namespace: "paas-ws-new",
      name: "web",
      chart: "podinfo",
      repo_url: REPO,
      version: "6.13.0",
      create_namespace: true,
      wait: true,
      timeout: 120,
    });
    expect(a.status, a.text).toBe(201);
    expect(a.json).toMatchObject({
      name: "web",
      namespace: "paas-ws-new",
      revision: 1,
      status: "deployed",
      chart: "podinfo",
      repo_url: REPO,
      values: {},
    });
    expect(s.h.kube.calls).toContain("ensureNamespace paas-ws-new");
    expect(s.h.helm.calls.find((c) => c.verb === "install")!.args).toMatchObject({
      chart: { ref: "podinfo", repoUrl: REPO, version: "6.13.0" },
      wait: true,
      timeoutSeconds: 120,
    });
  });

  it("POST /api/releases ignores unknown fields, as the old operator's pydantic models did", async () => {
    const s = await setup();
    const a = await s.call("POST", "/api/releases", {
      namespace: NS,
      name: "web",
      chart: OCI,
      odoo_instance_id: 42,
      createNamespace: "ignored too",
    });
    expect(a.status, a.text).toBe(201);
    // null means absent, as Optional fields in pydantic.
    const b = await s.call("POST", "/api/releases", {
      namespace: NS,
      name: "web2",
      chart: OCI,
      version: null,
      values: null,
      create_namespace: null,
      timeout: null,
    });
    expect(b.status, b.text).toBe(201);
  });

  it("GET /api/releases/{namespace}/{name} returns the release", async () => {
    const s = await setup();
    await installed(s);
    const a = await s.call("GET", `/api/releases/${NS}/web`);
    expect(a.status).toBe(200);
    for (const k of RELEASE_KEYS) expect(a.json).toHaveProperty(k);
    expect(a.json).toMatchObject({
      name: "web",
      namespace: NS,
      revision: 1,
      status: "deployed",
      chart: "postgresql",
      app_version: "17.1.0",
      values: { replicaCount: 1 },
    });
    expect(typeof a.json.revision).toBe("number");
    expect(Date.parse(a.json.updated)).toBe(Date.parse("2026-11-21T10:00:00Z"));
  });

  it("PATCH /api/releases/{namespace}/{name} upgrades: chart, version, values, reset_values, reuse_values, repo_url", async () => {
    const s = await setup();
    await installed(s);
    const a = await s.call("PATCH", `/api/releases/${NS}/web`, { version: "17.2.0", values: { replicaCount: 2 } });
    expect(a.status, a.text).toBe(200);
    expect(a.json).toMatchObject({
      name: "web",
      revision: 2,
      status: "deployed",
      chart_version: "17.2.0",
      values: { replicaCount: 2 },
    });
    const b = await s.call("PATCH", `/api/releases/${NS}/web`, { values: { x: 1 }, reuse_values: false });
    expect(b.status).toBe(200);
    expect(b.json.values).toEqual({ x: 1 });
    const c = await s.call("PATCH", `/api/releases/${NS}/web`, { reset_values: true, timeout: 60, wait: true });
    expect(c.status).toBe(200);
    const d = await s.call("PATCH", `/api/releases/${NS}/web`, { chart: "podinfo", repo_url: REPO, version: "6.14.1" });
    expect(d.status, d.text).toBe(200);
    expect(d.json).toMatchObject({ revision: 5, chart: "podinfo", chart_version: "6.14.1", repo_url: REPO });
    const upgrades = s.h.helm.calls.filter((x) => x.verb === "upgrade").map((x) => x.args);
    expect(upgrades[0]).toMatchObject({
      chart: { ref: OCI, version: "17.2.0" },
      reuseValues: true,
      resetValues: false,
    });
    expect(upgrades[1]).toMatchObject({ reuseValues: false });
    expect(upgrades[2]).toMatchObject({ resetValues: true, reuseValues: false, wait: true, timeoutSeconds: 60 });
    expect(upgrades[3]).toMatchObject({ chart: { ref: "podinfo", repoUrl: REPO, version: "6.14.1" } });
  });

  it("DELETE /api/releases/{namespace}/{name} uninstalls: {message}", async () => {
    const s = await setup();
    await installed(s);
    const a = await s.call("DELETE", `/api/releases/${NS}/web`);
    expect(a.status).toBe(200);
    expect(a.json).toEqual({ message: `Release web uninstalled from namespace ${NS}` });
    expect(s.h.cluster.history(NS, "web")).toHaveLength(0);
  });

  it("POST …/rollback: absent body, revision 0 and a revision number; {message}", async () => {
    const s = await setup();
    await installed(s);
    await s.call("PATCH", `/api/releases/${NS}/web`, { version: "17.2.0" });
    const a = await s.call("POST", `/api/releases/${NS}/web/rollback`);
    expect(a.status, a.text).toBe(200);
    expect(a.json.message).toBe("Release web rolled back to the previous revision (now revision 3)");
    const b = await s.call("POST", `/api/releases/${NS}/web/rollback`, { revision: 0 });
    expect(b.status).toBe(200);
    const c = await s.call("POST", `/api/releases/${NS}/web/rollback`, { revision: 1 });
    expect(c.status).toBe(200);
    expect(c.json.message).toBe("Release web rolled back to revision 1 (now revision 5)");
    expect(c.json.release).toMatchObject({ revision: 5, status: "deployed" });
    expect(
      s.h.helm.calls.filter((x) => x.verb === "rollback").map((x) => (x.args as { revision: number }).revision),
    ).toEqual([0, 0, 1]);
  });

  it("GET …/revisions lists the history with lowercase statuses", async () => {
    const s = await setup();
    await installed(s);
    await s.call("PATCH", `/api/releases/${NS}/web`, { version: "17.2.0" });
    const a = await s.call("GET", `/api/releases/${NS}/web/revisions`);
    expect(a.status).toBe(200);
    expect(a.json).toEqual({
      revisions: [
        {
          revision: 1,
          updated: "2026-11-21T10:00:00.000Z",
          status: "superseded",
          chart: "postgresql-17.1.0",
          app_version: "17.1.0",
          description: "Install complete",
        },
        {
          revision: 2,
          updated: "2026-11-21T10:00:00.000Z",
          status: "deployed",
          chart: "postgresql-17.2.0",
          app_version: "17.2.0",
          description: "Upgrade complete",
        },
      ],
    });
  });

  it("GET …/status returns the release, its pods and pod_retrieval_error", async () => {
    const s = await setup();
    await installed(s);
    s.h.cluster.pods.set(`${NS}/web`, [
      {
        name: "web-0",
        phase: "Running",
        readyContainers: 1,
        totalContainers: 1,
        restarts: 2,
        started: new Date(Date.now() - 300_000),
        reasons: [],
        node: "n1",
        ready: true,
      },
    ]);
    const a = await s.call("GET", `/api/releases/${NS}/web/status`);
    expect(a.status).toBe(200);
    expect(a.json.release).toMatchObject({ name: "web", status: "deployed", revision: 1 });
    expect(a.json.pods).toHaveLength(1);
    expect(a.json.pods[0]).toMatchObject({ name: "web-0", phase: "Running", ready: "1/1", restarts: 2, age: "5m" });
    expect(a.json.pod_retrieval_error).toBeNull();
    s.h.kube.podsError = new PaasError("unavailable", "pods could not be listed: Kubernetes API unreachable");
    const b = await s.call("GET", `/api/releases/${NS}/web/status`);
    expect(b.status).toBe(200);
    expect(b.json).toMatchObject({
      pods: [],
      pod_retrieval_error: "pods could not be listed: Kubernetes API unreachable",
    });
  });

  it("POST /api/namespaces creates a namespace with limits: 201 {message}", async () => {
    const s = await setup();
    const a = await s.call("POST", "/api/namespaces", {
      name: "paas-ws-tenant",
      cpu_limit: "1",
      memory_limit: "2Gi",
      storage_limit: "5Gi",
    });
    expect(a.status).toBe(201);
    expect(a.json.message).toBe("Namespace paas-ws-tenant created");
    expect(s.h.cluster.namespaces.get("paas-ws-tenant")).toEqual({
      quota: { cpu: "1", memory: "2Gi", storage: "5Gi" },
      managed: true,
    });
    const again = await s.call("POST", "/api/namespaces", { name: "paas-ws-tenant" });
    expect(again.status).toBe(201);
    expect(again.json).toMatchObject({
      message: "Namespace paas-ws-tenant already exists; quota updated",
      created: false,
    });
  });
});

describe("errors: {detail, error_type} with the old operator's statuses", () => {
  it("400 for a namespace outside the prefix in the body of POST /api/releases and POST /api/namespaces; nothing changes", async () => {
    const s = await setup();
    expectError(
      await s.call("POST", "/api/releases", { namespace: "kube-system", name: "web", chart: OCI }),
      400,
      "validation_error",
      /outside the managed prefix/,
    );
    expectError(
      await s.call("POST", "/api/namespaces", { name: "default" }),
      400,
      "validation_error",
      /outside the managed prefix/,
    );
    expect(mutations(s.h)).toEqual([]);
  });

  it("400 for other validation: malformed names, a file:// chart, a bad quantity, a timeout of 0, a revision below 0", async () => {
    const s = await setup();
    expectError(
      await s.call("POST", "/api/releases", { namespace: "paas-ws-Bad", name: "web", chart: OCI }),
      400,
      "validation_error",
    );
    expectError(
      await s.call("POST", "/api/releases", { namespace: NS, name: "Web_1", chart: OCI }),
      400,
      "validation_error",
    );
    expectError(
      await s.call("POST", "/api/releases", { namespace: NS, name: "web", chart: "file:///etc/passwd" }),
      400,
      "validation_error",
      /file:\/\//,
    );
    expectError(
      await s.call("POST", "/api/releases", { namespace: NS, name: "web", chart: "podinfo" }),
      400,
      "validation_error",
      /needs repo_url/,
    );
    expectError(
      await s.call("POST", "/api/releases", { namespace: NS, name: "web", chart: OCI, timeout: 0 }),
      400,
      "validation_error",
      "timeout must be at least 1s",
    );
    expectError(
      await s.call("POST", "/api/namespaces", { name: "paas-ws-q", cpu_limit: "lots" }),
      400,
      "validation_error",
      /cpu_limit/,
    );
    expectError(await s.call("POST", `/api/releases/${NS}/web/rollback`, { revision: -1 }), 400, "validation_error");
    expect(mutations(s.h)).toEqual([]);
  });

  it("400 failed_precondition when the release's state refuses the operation", async () => {
    const s = await setup();
    await installed(s);
    s.h.helm.errors.rollback = new PaasError(
      "failed_precondition",
      "Release web has no previous revision to roll back to",
    );
    expectError(
      await s.call("POST", `/api/releases/${NS}/web/rollback`),
      400,
      "failed_precondition",
      "Release web has no previous revision to roll back to",
    );
  });

  it("401 without a key or with a wrong one; the header name is case-insensitive", async () => {
    const s = await setup();
    await installed(s);
    expectError(
      await s.call("GET", `/api/releases/${NS}/web`, undefined, { key: null }),
      401,
      "unauthorized",
      "missing API key (x-api-key header)",
    );
    expectError(
      await s.call("GET", `/api/releases/${NS}/web`, undefined, { key: "wrong-key-0123456789" }),
      401,
      "unauthorized",
      "invalid API key",
    );
    expectError(
      await s.call("POST", "/api/releases", { namespace: NS, name: "evil", chart: OCI }, { key: "" }),
      401,
      "unauthorized",
    );
    for (const name of ["X-API-Key", "x-api-key", "X-API-KEY", "x-Api-kEy"]) {
      const a = await raw(s.port, "GET", `/api/releases/${NS}/web`, { [name]: API_KEY });
      expect(a.status, name).toBe(200);
      expect(a.json.name).toBe("web");
    }
    expect(s.h.helm.verbs().filter((v) => v === "install")).toHaveLength(1);
  });

  it("403 for a namespace outside the prefix in the path; nothing changes", async () => {
    const s = await setup();
    for (const [method, path] of [
      ["GET", "/api/releases/kube-system/web"],
      ["PATCH", "/api/releases/default/web"],
      ["DELETE", "/api/releases/kube-system/web"],
      ["POST", "/api/releases/xpaas-ws-a/web/rollback"],
      ["GET", "/api/releases/kube-system/web/revisions"],
      ["GET", "/api/releases/kube-system/web/status"],
    ] as const) {
      expectError(
        await s.call(method, path, method === "PATCH" || method === "POST" ? {} : undefined),
        403,
        "forbidden",
        /outside the managed prefix "paas-ws-"/,
      );
    }
    expect(mutations(s.h)).toEqual([]);
    expect(s.h.helm.verbs()).toEqual(["version"]);
  });

  it("404 for a release or namespace that does not exist", async () => {
    const s = await setup();
    expectError(
      await s.call("GET", `/api/releases/${NS}/ghost`),
      404,
      "not_found",
      `Release ghost not found in namespace ${NS}`,
    );
    expectError(
      await s.call("GET", `/api/releases/${NS}/ghost/status`),
      404,
      "not_found",
      `Release ghost not found in namespace ${NS}`,
    );
    expectError(
      await s.call("PATCH", `/api/releases/${NS}/ghost`, { version: "2.0.0" }),
      404,
      "not_found",
      `Release ghost not found in namespace ${NS}`,
    );
    expectError(
      await s.call("DELETE", `/api/releases/${NS}/ghost`),
      404,
      "not_found",
      `Release ghost not found in namespace ${NS}`,
    );
    expectError(await s.call("POST", `/api/releases/${NS}/ghost/rollback`), 404, "not_found");
    expectError(await s.call("GET", `/api/releases/${NS}/ghost/revisions`), 404, "not_found");
    expectError(
      await s.call("POST", "/api/releases", { namespace: "paas-ws-unmanaged", name: "web", chart: OCI }),
      404,
      "not_found",
      /paas-ws-unmanaged/,
    );
  });

  it("409 when the name is in use and when another operation is in progress", async () => {
    const s = await setup();
    await installed(s);
    expectError(
      await s.call("POST", "/api/releases", { namespace: NS, name: "web", chart: OCI }),
      409,
      "conflict",
      /still in use/,
    );
    s.h.helm.errors.upgrade = new PaasError("conflict", "Another operation on release web is in progress");
    expectError(
      await s.call("PATCH", `/api/releases/${NS}/web`, { version: "2.0.0" }),
      409,
      "conflict",
      "Another operation on release web is in progress",
    );
  });

  it("413 for a body over MAX_BODY_BYTES, declared or chunked; nothing changes", async () => {
    const s = await setup({ maxBodyBytes: 64 * 1024 });
    const big = { namespace: NS, name: "big", chart: OCI, values: { blob: "x".repeat(70 * 1024) } };
    expectError(
      await s.call("POST", "/api/releases", big),
      413,
      "payload_too_large",
      "Request body larger than 65536 bytes",
    );
    // Without Content-Length (chunked): refused once the limit is passed.
    const chunked = await raw(
      s.port,
      "POST",
      "/api/releases",
      { "x-api-key": API_KEY, "content-type": "application/json", "transfer-encoding": "chunked" },
      JSON.stringify(big),
    );
    expectError(chunked, 413, "payload_too_large");
    // A client that reads the answer only after sending everything (Python's http.client,
    // requests) gets the 413 too: the oversized body is drained, not cut off.
    const huge = JSON.stringify({ ...big, values: { blob: "x".repeat(3 * 1024 * 1024) } });
    const out = await rawBytes(
      s.port,
      Buffer.from(
        `POST /api/releases HTTP/1.1\r\nHost: x\r\nx-api-key: ${API_KEY}\r\ncontent-type: application/json\r\ncontent-length: ${huge.length}\r\nConnection: close\r\n\r\n${huge}`,
      ),
    );
    expect(out).toMatch(/^HTTP\/1\.1 413 /);
    expect(out).toContain('"error_type":"payload_too_large"');
    // A body just under the limit goes through.
    const fits = await s.call("POST", "/api/releases", {
      ...big,
      name: "fits",
      values: { blob: "x".repeat(60 * 1024) },
    });
    expect(fits.status, fits.text).toBe(201);
    expect(s.h.helm.calls.filter((c) => c.verb === "install").map((c) => (c.args as { name: string }).name)).toEqual([
      "fits",
    ]);
  });

  it("422 for malformed JSON, a body that is not an object, wrong types and missing required fields; nothing changes", async () => {
    const s = await setup();
    await installed(s);
    const before = mutations(s.h).length;
    expectError(await s.call("POST", "/api/releases", "{not json"), 422, "unprocessable_entity", /not valid JSON/);
    expectError(
      await s.call("POST", "/api/releases", "[1,2]"),
      422,
      "unprocessable_entity",
      "Request body must be a JSON object",
    );
    expectError(await s.call("PATCH", `/api/releases/${NS}/web`, '"values"'), 422, "unprocessable_entity");
    const rev = await s.call("POST", `/api/releases/${NS}/web/rollback`, { revision: "two" });
    expectError(rev, 422, "unprocessable_entity", "Invalid request body: revision: Input should be a valid integer");
    expect(rev.json.errors).toEqual([
      { loc: ["body", "revision"], msg: "Input should be a valid integer", type: "int_type" },
    ]);
    expectError(
      await s.call("POST", `/api/releases/${NS}/web/rollback`, { revision: 1.5 }),
      422,
      "unprocessable_entity",
    );
    expectError(
      await s.call("PATCH", `/api/releases/${NS}/web`, { values: [1] }),
      422,
      "unprocessable_entity",
      /values: Input should be a valid dictionary/,
    );
    expectError(
      await s.call("PATCH", `/api/releases/${NS}/web`, { values: "replicaCount=2" }),
      422,
      "unprocessable_entity",
      /values/,
    );
    expectError(
      await s.call("PATCH", `/api/releases/${NS}/web`, { reuse_values: "yes" }),
      422,
      "unprocessable_entity",
      /reuse_values/,
    );
    expectError(
      await s.call("PATCH", `/api/releases/${NS}/web`, { timeout: "soon" }),
      422,
      "unprocessable_entity",
      /timeout/,
    );
    const types = await s.call("POST", "/api/releases", { namespace: 5, name: "web", chart: OCI, values: [1] });
    expectError(types, 422, "unprocessable_entity");
    expect(types.json.errors.map((e: { loc: string[] }) => e.loc[1])).toEqual(["namespace", "values"]);
    const missing = await s.call("POST", "/api/releases", { namespace: NS });
    expectError(
      missing,
      422,
      "unprocessable_entity",
      "Invalid request body: name: Field required; chart: Field required",
    );
    expectError(
      await s.call("POST", "/api/namespaces", {}),
      422,
      "unprocessable_entity",
      "Invalid request body: name: Field required",
    );
    expectError(
      await s.call("POST", "/api/namespaces", { name: "paas-ws-x", cpu_limit: 2 }),
      422,
      "unprocessable_entity",
      /cpu_limit/,
    );
    const bytes = await raw(
      s.port,
      "POST",
      "/api/releases",
      { "x-api-key": API_KEY, "content-type": "application/json" },
      Buffer.from([0x7b, 0xff, 0x7d]),
    );
    expectError(bytes, 422, "unprocessable_entity", /UTF-8/);
    expect(mutations(s.h)).toHaveLength(before);
  });

  it("a value in a wrong-typed field is never echoed back", async () => {
    const s = await setup();
    const a = await s.call("POST", "/api/releases", {
      namespace: NS,
      name: "web",
      chart: OCI,
      version: { secret: "hunter2-password" },
    });
    expectError(a, 422, "unprocessable_entity");
    expect(a.text).not.toContain("hunter2");
  });

  it("500 with a sanitized message when helm fails unexpectedly; the secret stays out of the answer", async () => {
    const s = await setup();
    s.h.helm.errors.install = new Error(
      "helm: exit status 1: Error: INSTALLATION FAILED: auth.postgresPassword=s3cr3t-password rejected\n    at run (/usr/lib/helm.go:42)",
    );
    const a = await s.call("POST", "/api/releases", {
      namespace: NS,
      name: "web",
      chart: OCI,
      values: { auth: { postgresPassword: "s3cr3t-password" } },
    });
    expectError(a, 500, "internal_error", "internal error");
    expect(a.text).not.toMatch(/password|s3cr3t|helm\.go|INSTALLATION FAILED|\n/i);
    expect(a.json.request_id).toMatch(/^[0-9a-f-]{36}$/);
    // The log has the cause under the same request id, never the answer.
    expect(s.h.logs.text).toContain(a.json.request_id);
  });

  it("503 while shutting down or with the Kubernetes API unreachable, 504 when helm times out, 403 quota_exceeded", async () => {
    const s = await setup();
    await installed(s);
    s.h.helm.errors.upgrade = new PaasError("timeout", "helm upgrade of release web timed out");
    expectError(
      await s.call("PATCH", `/api/releases/${NS}/web`, { version: "2.0.0" }),
      504,
      "timeout",
      "helm upgrade of release web timed out",
    );
    s.h.helm.errors.upgrade = new PaasError("resource_exhausted", `Resource quota of namespace ${NS} exceeded`);
    expectError(await s.call("PATCH", `/api/releases/${NS}/web`, { version: "2.0.0" }), 403, "quota_exceeded", /quota/);
    s.h.helm.errors.history = new PaasError("unavailable", "The Kubernetes API is unreachable");
    expectError(
      await s.call("GET", `/api/releases/${NS}/web/revisions`),
      503,
      "service_unavailable",
      "The Kubernetes API is unreachable",
    );
    s.h.lifecycle.startDraining();
    expectError(await s.call("DELETE", `/api/releases/${NS}/web`), 503, "service_unavailable", /shutting down/);
    expect(s.h.helm.verbs().filter((v) => v === "uninstall")).toEqual([]);
  });

  it("405 with Allow for a wrong method on a known path, JSON 404 for an unknown path", async () => {
    const s = await setup();
    const put = await s.call("PUT", `/api/releases/${NS}/web`, {});
    expectError(put, 405, "method_not_allowed");
    expect(put.headers.get("allow")).toBe("GET, HEAD, PATCH, DELETE");
    const get = await s.call("GET", "/api/releases");
    expectError(get, 405, "method_not_allowed");
    expect(get.headers.get("allow")).toBe("POST");
    const rb = await s.call("GET", `/api/releases/${NS}/web/rollback`);
    expect(rb.headers.get("allow")).toBe("POST");
    const health = await s.call("POST", "/health", {}, { key: null });
    expectError(health, 405, "method_not_allowed");
    expect(health.headers.get("allow")).toBe("GET, HEAD");
    for (const path of ["/api/nope", `/api/releases/${NS}/web/history`, "/api", "/nope", "/api/releases//web"]) {
      expectError(await s.call("GET", path), 404, "not_found", /^Not found: GET /);
    }
    expect(mutations(s.h)).toEqual([]);
  });

  it("path tricks get a JSON 400 (or 404 when no route matches) and change nothing", async () => {
    const s = await setup();
    await installed(s);
    managedNamespace(s.h.cluster, "paas-ws-other");
    const before = mutations(s.h).length;
    const key = { "x-api-key": API_KEY, "content-type": "application/json" };
    const tricks: Array<[string, string, number]> = [
      ["DELETE", `/api/releases/${NS}/..`, 400],
      ["DELETE", `/api/releases/${NS}/.`, 400],
      ["DELETE", `/api/releases/${NS}/%2E%2E`, 400],
      ["DELETE", `/api/releases/../${NS}/web`, 404],
      ["DELETE", `/api/releases/${NS}/web/../../paas-ws-other/web`, 404],
      ["DELETE", `/api/releases/${NS}%2Fweb/x`, 400],
      ["DELETE", `/api/releases/${NS}/web%2F..%2F..%2Fkube-system`, 400],
      ["DELETE", `/api/releases/paas-ws-other%2F..%2F${NS}/web`, 400],
      ["DELETE", `/api/releases/${NS}/web%5C..`, 400],
      ["DELETE", `/api/releases/${NS}/web%00`, 400],
      ["PATCH", `/api/releases/${NS}/..`, 400],
      ["POST", `/api/releases/..%2F${NS}/web/rollback`, 400],
      ["DELETE", `/api/releases/paas-ws-%C3%A4/web`, 400],
      ["DELETE", `/api/releases/${NS}/w%C3%A9b`, 400],
      ["PATCH", `/api/releases/${NS}/%F0%9F%92%A3`, 400],
      ["DELETE", `/api/releases/${NS}/web%ZZ`, 400],
    ];
    for (const [method, path, status] of tricks) {
      const a = await raw(s.port, method, path, key, method === "DELETE" ? undefined : "{}");
      expect(a.status, `${method} ${path}: ${a.text}`).toBe(status);
      expect(a.json?.error_type, path).toBe(status === 404 ? "not_found" : "validation_error");
      expect(typeof a.json.detail).toBe("string");
    }
    // Raw UTF-8 bytes in the request line never reach the application: Node's parser refuses
    // them, and the listener still answers in the JSON error shape.
    const out = await rawBytes(
      s.port,
      Buffer.concat([
        Buffer.from(`DELETE /api/releases/${NS}/w`),
        Buffer.from("é", "utf8"),
        Buffer.from(`b HTTP/1.1\r\nHost: x\r\nx-api-key: ${API_KEY}\r\nConnection: close\r\n\r\n`),
      ]),
    );
    expect(out).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(out.slice(out.indexOf("\r\n\r\n") + 4))).toEqual({
      detail: "Malformed HTTP request",
      error_type: "validation_error",
    });
    expect(mutations(s.h)).toHaveLength(before);
    expect(s.h.cluster.history(NS, "web")).toHaveLength(1);
  });
});

describe("REST and Connect JSON agree", () => {
  it("GetRelease, GetReleaseStatus and ListReleaseRevisions: same data, different shapes", async () => {
    const s = await setup();
    await installed(s);
    await s.call("PATCH", `/api/releases/${NS}/web`, { version: "17.2.0", values: { replicaCount: 3 } });
    s.h.cluster.pods.set(`${NS}/web`, [
      {
        name: "web-0",
        phase: "Running",
        readyContainers: 1,
        totalContainers: 1,
        restarts: 0,
        started: new Date(Date.now() - 60_000),
        reasons: [],
        node: "n1",
        ready: true,
      },
      {
        name: "web-1",
        phase: "Pending",
        readyContainers: 0,
        totalContainers: 2,
        restarts: 1,
        reasons: ["Unschedulable"],
        node: "",
        ready: false,
      },
    ]);
    const target = { namespace: NS, name: "web" };
    const sameRelease = (rest: any, proto: any) => {
      expect(rest).toMatchObject({
        name: proto.name,
        namespace: proto.namespace,
        revision: proto.revision,
        status: proto.status
          .replace(/^RELEASE_STATUS_/, "")
          .toLowerCase()
          .replace(/_/g, "-"),
        chart: proto.chart,
        app_version: proto.appVersion,
        description: proto.description,
        values: proto.values,
        chart_version: proto.chartVersion,
        chart_reference: proto.chartReference,
      });
      expect(Date.parse(rest.updated)).toBe(Date.parse(proto.updated));
    };

    const restGet = await s.call("GET", `/api/releases/${NS}/web`);
    const rpcGet = await s.connect("ReleaseService/GetRelease", target);
    expect(rpcGet.status).toBe(200);
    sameRelease(restGet.json, rpcGet.json.release);
    expect(restGet.json.status).toBe("deployed");

    const restStatus = await s.call("GET", `/api/releases/${NS}/web/status`);
    const rpcStatus = await s.connect("ReleaseService/GetReleaseStatus", target);
    sameRelease(restStatus.json.release, rpcStatus.json.release);
    expect(restStatus.json.pods.map((p: any) => [p.name, p.phase, p.ready, p.restarts])).toEqual(
      rpcStatus.json.pods.map((p: any) => [p.name, p.phase, p.ready, p.restarts ?? 0]),
    );
    expect(restStatus.json.pods[1]).toMatchObject({ ready: "0/2", phase: "Pending", reasons: ["Unschedulable"] });

    const restRevs = await s.call("GET", `/api/releases/${NS}/web/revisions`);
    const rpcRevs = await s.connect("ReleaseService/ListReleaseRevisions", target);
    expect(
      restRevs.json.revisions.map((r: any) => [
        r.revision,
        r.status,
        r.chart,
        r.app_version,
        r.description,
        Date.parse(r.updated),
      ]),
    ).toEqual(
      rpcRevs.json.revisions.map((r: any) => [
        r.revision,
        r.status.replace(/^RELEASE_STATUS_/, "").toLowerCase(),
        r.chart,
        r.appVersion,
        r.description,
        Date.parse(r.updated),
      ]),
    );

    // And the errors: same reason, the REST status and the Connect code.
    const restMissing = await s.call("GET", `/api/releases/${NS}/ghost`);
    const rpcMissing = await s.connect("ReleaseService/GetRelease", { namespace: NS, name: "ghost" });
    expect([restMissing.status, restMissing.json.detail]).toEqual([404, rpcMissing.json.message]);
    expect(rpcMissing.json.code).toBe("not_found");
  });
});

describe("the same interceptors, the same request path", () => {
  it("logs REST calls as RPCs with the caller's key id, peer address and request id", async () => {
    const s = await setup();
    await installed(s);
    const a = await s.call("GET", `/api/releases/${NS}/web`, undefined, { headers: { "x-request-id": "odoo-req-42" } });
    expect(a.status).toBe(200);
    expect(a.headers.get("x-request-id")).toBe("odoo-req-42");
    const line = s.h.logs.lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.requestId === "odoo-req-42")!;
    expect(line).toMatchObject({
      rpc: "paas.v1.ReleaseService/GetRelease",
      code: "ok",
      peer: "127.0.0.1",
      namespace: NS,
      name: "web",
    });
    expect(line.caller).toMatch(/^key-[0-9a-f]{8}$/);
    expect(s.h.logs.text).not.toContain(API_KEY);
    // A request id the interceptor would not accept is replaced, on both sides alike.
    const b = await s.call("GET", `/api/releases/${NS}/ghost`, undefined, {
      headers: { "x-request-id": "bad id with spaces" },
    });
    expect(b.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    expect(b.json.request_id).toBe(b.headers.get("x-request-id"));
  });

  it("serves REST over HTTP/2 cleartext too, and HEAD like GET without a body", async () => {
    const s = await setup();
    await installed(s);
    const session = http2.connect(s.base);
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = session.request({ ":method": "GET", ":path": `/api/releases/${NS}/web`, "x-api-key": API_KEY });
      let data = "";
      let st = 0;
      req.on("response", (h) => (st = Number(h[":status"])));
      req.setEncoding("utf8");
      req.on("data", (d) => (data += d));
      req.on("end", () => resolve({ status: st, body: data }));
      req.on("error", reject);
    });
    expect(status).toBe(200);
    expect(JSON.parse(body)).toMatchObject({ name: "web", status: "deployed" });
    // 413 over HTTP/2: no Connection header there, the stream just ends.
    const big = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = session.request({
        ":method": "POST",
        ":path": "/api/releases",
        "x-api-key": API_KEY,
        "content-type": "application/json",
      });
      let data = "";
      let st = 0;
      req.on("response", (h) => (st = Number(h[":status"])));
      req.setEncoding("utf8");
      req.on("data", (d) => (data += d));
      req.on("end", () => resolve({ status: st, body: data }));
      req.on("error", reject);
      req.end(JSON.stringify({ namespace: NS, name: "big", chart: OCI, values: { blob: "x".repeat(1100 * 1024) } }));
    });
    session.close();
    expect(big.status).toBe(413);
    expect(JSON.parse(big.body)).toMatchObject({ error_type: "payload_too_large" });
    const head = await raw(s.port, "HEAD", `/api/releases/${NS}/web`, { "x-api-key": API_KEY });
    expect(head.status).toBe(200);
    expect(head.text).toBe("");
    // A trailing slash is the same path, as FastAPI's redirect made it.
    expect((await s.call("GET", `/api/releases/${NS}/web/`)).status).toBe(200);
  });

  it("also serves the other annotated RPCs: list releases, get, list and delete namespaces", async () => {
    const s = await setup();
    await installed(s);
    const list = await s.call("GET", `/api/releases/${NS}`);
    expect(list.status).toBe(200);
    expect(list.json.releases.map((r: { name: string; status: string }) => [r.name, r.status])).toEqual([
      ["web", "deployed"],
    ]);
    const ns = await s.call("GET", `/api/namespaces/${NS}`);
    expect(ns.json).toMatchObject({
      name: NS,
      phase: "Active",
      quota: expect.arrayContaining([{ resource: "limits.cpu", hard: "2", used: "0" }]),
    });
    const all = await s.call("GET", "/api/namespaces");
    expect(all.json.namespaces.map((n: { name: string }) => n.name)).toEqual([NS]);
    expectError(await s.call("DELETE", "/api/namespaces/kube-system"), 403, "forbidden");
    const del = await s.call("DELETE", `/api/namespaces/${NS}`);
    expect(del.json).toEqual({ message: `Namespace ${NS} deleted` });
  });
});
