import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.ts";

const KEY = "k".repeat(32);

describe("loadConfig", () => {
  it("uses the old operator's defaults", () => {
    const c = loadConfig({ API_KEY: KEY });
    expect(c).toMatchObject({
      host: "0.0.0.0",
      port: 8000,
      logLevel: "info",
      namespacePrefix: "paas-ws-",
      helmBinary: "helm",
      helmTimeoutSeconds: 300,
      helmConcurrency: 4,
      maxBodyBytes: 1048576,
      apiKeys: [KEY],
    });
    expect(c.shutdownGraceMs).toBe(330_000);
  });

  it("serves metrics on the main port unless METRICS_PORT names one", () => {
    expect(loadConfig({ API_KEY: KEY }).metricsPort).toBeUndefined();
    expect(loadConfig({ API_KEY: KEY, METRICS_PORT: "" }).metricsPort).toBeUndefined();
    expect(loadConfig({ API_KEY: KEY, METRICS_PORT: "9464" }).metricsPort).toBe(9464);
  });

  it("refuses to start without a key unless development mode is explicit", () => {
    expect(() => loadConfig({})).toThrow(ConfigError);
    expect(() => loadConfig({ API_KEY: "" })).toThrow(/API_KEY/);
    expect(loadConfig({ ALLOW_UNAUTHENTICATED: "true" }).apiKeys).toEqual([]);
  });

  it("reads keys from API_KEY_FILE, one per line, and never echoes a key", () => {
    const dir = mkdtempSync(join(tmpdir(), "cfg-"));
    const file = join(dir, "keys");
    writeFileSync(file, `# team a\n${KEY}\n\n${"z".repeat(20)}\n`);
    expect(loadConfig({ API_KEY_FILE: file }).apiKeys).toEqual([KEY, "z".repeat(20)]);
    writeFileSync(file, "short\n");
    let message = "";
    try {
      loadConfig({ API_KEY_FILE: file });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/at least 16/);
    expect(message).not.toContain("short");
    expect(() => loadConfig({ API_KEY_FILE: join(dir, "missing") })).toThrow(/cannot be read/);
  });

  it.each([
    ["PORT", "eighty"],
    ["PORT", "70000"],
    ["METRICS_PORT", "nine"],
    ["METRICS_PORT", "65536"],
    ["HELM_TIMEOUT", "5 minutes"],
    ["HELM_TIMEOUT", "0"],
    ["LOG_LEVEL", "loud"],
    ["NAMESPACE_PREFIX", "Paas_"],
    ["HELM_CONCURRENCY", "0"],
    ["HELM_REPOSITORIES", "bitnami"],
    ["HELM_REPOSITORIES", "x=ftp://example.test"],
    ["ALLOW_UNAUTHENTICATED", "maybe"],
    ["WORKLOAD_MAX_REPLICAS", "0"],
    ["WORKLOAD_MAX_REPLICAS", "many"],
  ])("rejects %s=%s with a one-line reason", (name, value) => {
    expect(() => loadConfig({ API_KEY: KEY, [name]: value })).toThrow(ConfigError);
  });

  it("reads WORKLOAD_MAX_REPLICAS (default 20)", () => {
    expect(loadConfig({ API_KEY: KEY }).workloadMaxReplicas).toBe(20);
    expect(loadConfig({ API_KEY: KEY, WORKLOAD_MAX_REPLICAS: "50" }).workloadMaxReplicas).toBe(50);
  });

  it("parses durations, repositories and plain-HTTP registries", () => {
    const c = loadConfig({
      API_KEY: KEY,
      HELM_TIMEOUT: "5m",
      HELM_REPOSITORIES: "bitnami=https://charts.example.test/bitnami, local=http://127.0.0.1:8879",
      HELM_PLAIN_HTTP_REGISTRIES: "127.0.0.1:5000",
    });
    expect(c.helmTimeoutSeconds).toBe(300);
    expect(c.repositories).toEqual({ bitnami: "https://charts.example.test/bitnami", local: "http://127.0.0.1:8879" });
    expect(c.plainHttpRegistries).toEqual(["127.0.0.1:5000"]);
  });

  it("reads the reliability settings, with defaults", () => {
    const base = { API_KEY: "0123456789abcdef0123" };
    const d = loadConfig(base);
    expect(d).toMatchObject({
      auditDatabaseUrl: undefined,
      auditSqlitePath: "data/audit.db",
      idempotencyTtlMs: 24 * 3600_000,
      leaseNamespace: "paas-system",
      leaseDurationSeconds: 15,
      operationWaitMs: 120_000,
      heartbeatMs: 5000,
      reconcileIntervalMs: 30_000,
    });
    expect(d.replica).toMatch(/^.+-[0-9a-f]{6}$/);
    // Two starts of one pod are two replicas: the dead one's intents can be told apart.
    expect(loadConfig({ ...base, POD_NAME: "op-1" }).replica).not.toBe(
      loadConfig({ ...base, POD_NAME: "op-1" }).replica,
    );
    const c = loadConfig({
      ...base,
      AUDIT_DATABASE_URL: "postgresql://u:p@db:5432/audit",
      IDEMPOTENCY_KEY_TTL: "72h",
      POD_NAMESPACE: "ops",
      LEASE_DURATION: "30s",
      OPERATION_WAIT_TIMEOUT: "10m",
      POD_NAME: "paas-operator-7d9f",
    });
    expect(c).toMatchObject({
      auditDatabaseUrl: "postgresql://u:p@db:5432/audit",
      idempotencyTtlMs: 72 * 3600_000,
      leaseNamespace: "ops",
      leaseDurationSeconds: 30,
      operationWaitMs: 600_000,
    });
    expect(c.replica).toMatch(/^paas-operator-7d9f-[0-9a-f]{6}$/);
    expect(loadConfig({ ...base, POD_NAMESPACE: "ops", LEASE_NAMESPACE: "leases" }).leaseNamespace).toBe("leases");
  });

  it("refuses a bad AUDIT_DATABASE_URL without echoing it", () => {
    const base = { API_KEY: "0123456789abcdef0123" };
    for (const url of ["mysql://u:secretpw@db/x", "not a url secretpw"]) {
      const err = (() => {
        try {
          loadConfig({ ...base, AUDIT_DATABASE_URL: url });
        } catch (e) {
          return e as Error;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(ConfigError);
      expect(err!.message).toMatch(/AUDIT_DATABASE_URL/);
      expect(err!.message).not.toContain("secretpw");
    }
    expect(() => loadConfig({ ...base, IDEMPOTENCY_KEY_TTL: "169h" })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, LEASE_DURATION: "0" })).toThrow(ConfigError);
  });
});
