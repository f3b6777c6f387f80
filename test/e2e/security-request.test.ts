import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPaasClient, type PaasClient } from "../../clients/paas-client.ts";
import { startServer, testbedEnv, uniqueNamespace, type ServerProcess } from "../support/testbed.ts";
import { failure } from "../support/failure.ts";

// The request side of tenant isolation against the real server, the real helm and the
// testbed cluster: the chart catalogue, values that must pass literally, and scoped API keys
// over Connect JSON (HTTP/1.1) and gRPC (HTTP/2).

const tb = testbedEnv();
const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
const core = kc.makeApiClient(k8s.CoreV1Api);
const apps = kc.makeApiClient(k8s.AppsV1Api);

const READER = `reader-${"r".repeat(24)}`;
const DEPLOYER = `deployer-${"d".repeat(24)}`;
const OCI_CHART = `oci://${tb.OCI_REGISTRY}/charts/podinfo`;

async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream) void _;
}

async function helmSecrets(namespace: string): Promise<string[]> {
  const list = await core.listNamespacedSecret({ namespace, labelSelector: "owner=helm" });
  return list.items.map((s) => s.metadata?.name ?? "");
}

async function namespaceExists(name: string): Promise<boolean> {
  return core.readNamespace({ name }).then(
    () => true,
    (err: { code?: number }) => {
      if (err.code === 404) return false;
      throw err;
    },
  );
}

describe("request-side security against the real server", () => {
  const dir = mkdtempSync(join(tmpdir(), "security-e2e-"));
  const keysFile = join(dir, "keys.json");
  const nsA = uniqueNamespace("sec-a");
  const nsB = uniqueNamespace("sec-b");
  const nsNever = uniqueNamespace("sec-never");
  const keys = [
    { id: "e2e-reader", key: READER, namespaces: [nsA], verbs: ["read"] },
    { id: "e2e-deployer", key: DEPLOYER, namespaces: [nsA], verbs: ["read", "deploy", "delete"] },
  ];
  let server: ServerProcess;
  let admin: PaasClient;
  let adminH2: PaasClient;
  const as = (key: string, protocol: "connect" | "grpc") =>
    createPaasClient({
      baseUrl: server.baseUrl,
      apiKey: key,
      protocol,
      ...(protocol === "connect" ? { httpVersion: "1.1" as const } : {}),
    });

  beforeAll(async () => {
    // The testbed's catalogue (scripts/testbed/write-catalog.sh), or the same written here.
    let catalog = process.env.CHART_CATALOG_FILE;
    if (!catalog) {
      catalog = join(dir, "catalog.json");
      writeFileSync(catalog, JSON.stringify({ sources: [tb.CHART_REPO_URL, `oci://${tb.OCI_REGISTRY}/charts`] }));
    }
    writeFileSync(keysFile, JSON.stringify({ keys }));
    server = await startServer({ API_KEYS_FILE: keysFile, CHART_CATALOG_FILE: catalog });
    admin = as(server.apiKey, "connect");
    adminH2 = as(server.apiKey, "grpc");
    await admin.namespaces.createNamespace({ name: nsA });
    await adminH2.namespaces.createNamespace({ name: nsB });
  });

  afterAll(async () => {
    for (const name of [nsA, nsB, nsNever]) await core.deleteNamespace({ name }).catch(() => undefined);
    if (server) expect(await server.stop()).toBe(0);
    rmSync(dir, { recursive: true, force: true });
  });

  it("starts with the catalogue, not in allow-all mode", () => {
    const line = server.logs.find((l) => l.msg === "chart catalogue");
    expect(line?.sources).toEqual(expect.arrayContaining([`oci://${tb.OCI_REGISTRY}/charts`]));
    expect(server.logs.some((l) => typeof l.msg === "string" && l.msg.startsWith("no chart catalogue"))).toBe(false);
  });

  const chartPort = new URL(tb.CHART_REPO_URL).port;
  const refused: Array<[string, { chart: string; repoUrl?: string }, Code]> = [
    ["an absolute path", { chart: "/etc/passwd" }, Code.InvalidArgument],
    ["a relative path", { chart: "./podinfo" }, Code.InvalidArgument],
    ["a parent path", { chart: "../../shared/charts/podinfo-6.13.0.tgz" }, Code.InvalidArgument],
    ["file:// as chart", { chart: "file:///etc/passwd" }, Code.InvalidArgument],
    ["file:// as repo_url", { chart: "podinfo", repoUrl: "file:///tmp" }, Code.InvalidArgument],
    [
      "the link-local metadata address",
      { chart: "podinfo", repoUrl: "http://169.254.169.254/latest/meta-data/" },
      Code.PermissionDenied,
    ],
    ["a link-local OCI registry", { chart: "oci://169.254.169.254/charts/podinfo" }, Code.PermissionDenied],
    [
      "an IPv4-mapped link-local address",
      { chart: "podinfo", repoUrl: "http://[::ffff:169.254.169.254]/" },
      Code.PermissionDenied,
    ],
    [
      "metadata.google.internal",
      { chart: "podinfo", repoUrl: "http://metadata.google.internal/computeMetadata/v1/" },
      Code.PermissionDenied,
    ],
    [
      "a decimal spelling of 169.254.169.254",
      { chart: "podinfo", repoUrl: "http://2852039166/" },
      Code.InvalidArgument,
    ],
    [
      "credentials in repo_url",
      { chart: "podinfo", repoUrl: tb.CHART_REPO_URL.replace("http://", "http://user:secret@") },
      Code.InvalidArgument,
    ],
    [
      "credentials in an OCI reference",
      { chart: OCI_CHART.replace("oci://", "oci://user:secret@") },
      Code.InvalidArgument,
    ],
    [
      "encoded dots in an OCI reference",
      { chart: `oci://${tb.OCI_REGISTRY}/charts/%2e%2e/charts/podinfo` },
      Code.InvalidArgument,
    ],
    [
      "the testbed repository under another host name",
      { chart: "podinfo", repoUrl: `http://localhost:${chartPort}` },
      Code.PermissionDenied,
    ],
    [
      "a host outside the catalogue",
      { chart: "podinfo", repoUrl: "https://charts.example.org/stable" },
      Code.PermissionDenied,
    ],
    [
      "the testbed registry outside /charts",
      { chart: `oci://${tb.OCI_REGISTRY}/other/podinfo` },
      Code.PermissionDenied,
    ],
    [
      "a sibling path sharing the prefix string",
      { chart: `oci://${tb.OCI_REGISTRY}/charts-x/podinfo` },
      Code.PermissionDenied,
    ],
  ];

  it("refuses chart references outside the catalogue, over Connect JSON and gRPC, and installs nothing", async () => {
    for (const [what, fields, code] of refused) {
      for (const client of [admin, adminH2]) {
        const err = await failure(
          client.releases.installRelease({ namespace: nsA, name: "evil", version: "6.13.0", ...fields }),
        );
        expect([what, err.code]).toEqual([what, code]);
        // Into a namespace that does not exist yet, asking to create it: nothing is created either.
        const err2 = await failure(
          client.releases.installRelease({ namespace: nsNever, name: "evil", createNamespace: true, ...fields }),
        );
        expect([what, err2.code]).toEqual([what, code]);
      }
    }
    expect(await helmSecrets(nsA)).toEqual([]);
    expect(await namespaceExists(nsNever)).toBe(false);
    // The server never started a helm install or upgrade for them.
    expect(server.logs.filter((l) => JSON.stringify(l).includes('"evil"') && /helm/i.test(String(l.msg)))).toEqual([]);
  });

  it("passes values with , = \\ . in keys literally through the real helm (values file, never --set)", async () => {
    const values = {
      // Kubernetes annotation keys allow '.' and '/' (which --set would split), the value takes the rest.
      podAnnotations: { "paas.test/a.b": "c,d=e\\f.g", "x.y.z": "1,2" },
      // A key podinfo ignores, full of what --set would misread; helm stores it as given.
      "a.b,c=d\\e": { "f.g=h": "i,j\\k", "[0]": ["l.m", "n=o"] },
    };
    const res = await as(DEPLOYER, "connect").releases.installRelease({
      namespace: nsA,
      name: "literal",
      chart: OCI_CHART,
      version: "6.13.0",
      values,
    });
    expect(res.release?.values).toEqual(values);
    const got = await as(DEPLOYER, "grpc").releases.getRelease({ namespace: nsA, name: "literal" });
    expect(got.release?.values).toEqual(values);
    // podinfo labels its Deployment app.kubernetes.io/name=<fullname>; helm annotates the owner.
    const deployments = (await apps.listNamespacedDeployment({ namespace: nsA })).items.filter(
      (d) => d.metadata?.annotations?.["meta.helm.sh/release-name"] === "literal",
    );
    expect(deployments).toHaveLength(1);
    expect(deployments[0]!.spec?.template.metadata?.annotations).toMatchObject({
      "paas.test/a.b": "c,d=e\\f.g",
      "x.y.z": "1,2",
    });
  });

  it("scoped keys over Connect JSON and gRPC: verbs, namespace scope, filtered lists", async () => {
    // Another tenant's release, installed with the unscoped key.
    await adminH2.releases.installRelease({
      namespace: nsB,
      name: "theirs",
      chart: "podinfo",
      repoUrl: tb.CHART_REPO_URL,
      version: "6.13.0",
    });
    for (const protocol of ["connect", "grpc"] as const) {
      const reader = as(READER, protocol);
      const deployer = as(DEPLOYER, protocol);
      // Reads in its own namespace.
      expect((await reader.releases.getRelease({ namespace: nsA, name: "literal" })).release?.name).toBe("literal");
      expect((await reader.releases.listReleases({ namespace: nsA })).releases.map((r) => r.name)).toEqual(["literal"]);
      // Lists show only its namespace.
      const listed = (await reader.namespaces.listNamespaces({})).namespaces.map((n) => n.name);
      expect(listed).toEqual([nsA]);
      expect((await admin.namespaces.listNamespaces({})).namespaces.map((n) => n.name)).toEqual(
        expect.arrayContaining([nsA, nsB]),
      );
      // A read-only key may not install: PERMISSION_DENIED, nothing installed.
      const denied = await failure(
        reader.releases.installRelease({ namespace: nsA, name: `ro-${protocol}`, chart: OCI_CHART, version: "6.13.0" }),
      );
      expect(denied.code).toBe(Code.PermissionDenied);
      expect((await failure(reader.releases.uninstallRelease({ namespace: nsA, name: "literal" }))).code).toBe(
        Code.PermissionDenied,
      );
      expect((await failure(deployer.namespaces.deleteNamespace({ name: nsA }))).code).toBe(Code.PermissionDenied);
      // Another tenant's release answers as one that does not exist.
      const theirs = await failure(reader.releases.getRelease({ namespace: nsB, name: "theirs" }));
      const ghost = await failure(reader.releases.getRelease({ namespace: nsB, name: "ghost" }));
      expect([theirs.code, theirs.rawMessage]).toEqual([ghost.code, ghost.rawMessage]);
      expect(theirs.code).toBe(Code.PermissionDenied);
      expect((await failure(deployer.releases.uninstallRelease({ namespace: nsB, name: "theirs" }))).code).toBe(
        Code.PermissionDenied,
      );
      expect((await failure(drain(reader.releases.watchReleaseStatus({ namespace: nsB, name: "theirs" })))).code).toBe(
        Code.PermissionDenied,
      );
    }
    expect((await helmSecrets(nsA)).every((s) => s.startsWith("sh.helm.release.v1.literal."))).toBe(true);
    expect((await admin.releases.getRelease({ namespace: nsB, name: "theirs" })).release?.revision).toBe(1);
    // The key id, never the key, is the caller in the log.
    const text = JSON.stringify(server.logs);
    expect(text).toContain('"caller":"e2e-reader"');
    expect(text).not.toContain(READER);
    expect(text).not.toContain(DEPLOYER);
  });

  it("a key removed from API_KEYS_FILE is refused after the reload", async () => {
    const reader = as(READER, "grpc");
    expect((await reader.releases.listReleases({ namespace: nsA })).releases.length).toBe(1);
    writeFileSync(keysFile, JSON.stringify({ keys: keys.filter((k) => k.id !== "e2e-reader") }));
    let code: Code | "ok" = "ok";
    for (let i = 0; i < 100 && code === "ok"; i++) {
      await new Promise((r) => setTimeout(r, 100));
      code = await reader.releases.listReleases({ namespace: nsA }).then(
        () => "ok" as const,
        (e) => ConnectError.from(e).code,
      );
    }
    expect(code).toBe(Code.Unauthenticated);
    expect((await as(DEPLOYER, "connect").releases.listReleases({ namespace: nsA })).releases.length).toBe(1);
    expect(server.logs.some((l) => l.msg === "API keys reloaded")).toBe(true);
  });
});
