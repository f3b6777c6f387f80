import { describe, expect, it } from "vitest";
import { PaasError } from "../../../src/errors.ts";
import {
  historyArgs,
  impersonationArgs,
  installArgs,
  LIST_TIME_FORMAT,
  listArgs,
  metadataArgs,
  renderGuardArgs,
  rollbackArgs,
  statusArgs,
  uninstallArgs,
  upgradeArgs,
  versionArgs,
} from "../../../src/helm/args.ts";
import type { InstallOptions, UpgradeOptions } from "../../../src/helm/helm-client.ts";

const ctx = { valuesFile: "/tmp/x/values.json", plainHttp: false };

function install(over: Partial<InstallOptions> = {}): InstallOptions {
  return {
    namespace: "ws-a",
    name: "web",
    timeoutSeconds: 120,
    chart: { ref: "podinfo", version: "6.13.0", repoUrl: "http://charts.example/" },
    values: { replicaCount: 2 },
    createNamespace: false,
    wait: false,
    labels: {},
    ...over,
  };
}

function upgrade(over: Partial<UpgradeOptions> = {}): UpgradeOptions {
  return {
    namespace: "ws-a",
    name: "web",
    timeoutSeconds: 60,
    chart: { ref: "oci://registry.example/charts/podinfo", version: "6.14.1" },
    values: {},
    resetValues: false,
    reuseValues: true,
    wait: true,
    labels: { "paas.example/tenant": "t1" },
    ...over,
  };
}

function invalid(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PaasError);
    expect((err as PaasError).kind).toBe("invalid_argument");
    return;
  }
  throw new Error("expected invalid_argument");
}

describe("install args", () => {
  it.each([3, 4] as const)("builds a repoUrl install for v%i", (major) => {
    expect(installArgs(install(), major, ctx)).toEqual([
      "install",
      "web",
      "podinfo",
      "--version",
      "6.13.0",
      "--repo",
      "http://charts.example/",
      "--namespace",
      "ws-a",
      "--output",
      "json",
      "--timeout",
      "120s",
      "--values",
      "/tmp/x/values.json",
    ]);
  });

  it("adds --create-namespace, --wait and sorted --labels", () => {
    const args = installArgs(install({ createNamespace: true, wait: true, labels: { b: "2", a: "1" } }), 4, ctx);
    expect(args).toContain("--create-namespace");
    expect(args).toContain("--wait");
    expect(args.slice(args.indexOf("--labels"), args.indexOf("--labels") + 2)).toEqual(["--labels", "a=1,b=2"]);
    expect(args.join(" ")).not.toMatch(/--wait=|--atomic|--rollback-on-failure|--set/);
  });

  it("passes oci refs as the chart argument, with --plain-http only when asked or on loopback", () => {
    const oci = install({ chart: { ref: "oci://registry.example/charts/podinfo", version: "6.13.0" } });
    expect(installArgs(oci, 4, ctx).slice(0, 5)).toEqual([
      "install",
      "web",
      "oci://registry.example/charts/podinfo",
      "--version",
      "6.13.0",
    ]);
    expect(installArgs(oci, 4, ctx)).not.toContain("--plain-http");
    expect(installArgs(oci, 4, { ...ctx, plainHttp: true })).toContain("--plain-http");
    expect(installArgs(oci, 4, { ...ctx, plainHttpRegistries: ["Registry.example"] })).toContain("--plain-http");
    expect(installArgs(oci, 4, { ...ctx, plainHttpRegistries: ["registry.example:5000"] })).not.toContain(
      "--plain-http",
    );
    const withPort = install({ chart: { ref: "oci://registry.example:5000/charts/podinfo" } });
    expect(installArgs(withPort, 4, { ...ctx, plainHttpRegistries: ["registry.example:5000"] })).toContain(
      "--plain-http",
    );
    for (const host of ["127.0.0.1:5000", "localhost:5001", "[::1]:5000"]) {
      expect(installArgs(install({ chart: { ref: `oci://${host}/charts/podinfo` } }), 3, ctx)).toContain(
        "--plain-http",
      );
    }
  });

  it("passes repo/chart as is", () => {
    expect(installArgs(install({ chart: { ref: "bitnami/redis" } }), 3, ctx).slice(0, 4)).toEqual([
      "install",
      "web",
      "bitnami/redis",
      "--namespace",
    ]);
  });

  it("rejects anything that could be read as a flag or a local path", () => {
    invalid(() => installArgs(install({ name: "--kubeconfig=/etc/x" }), 4, ctx));
    invalid(() => installArgs(install({ namespace: "-n" }), 4, ctx));
    invalid(() => installArgs(install({ chart: { ref: "-chart", repoUrl: "http://x/" } }), 4, ctx));
    invalid(() =>
      installArgs(install({ chart: { ref: "podinfo", version: "--devel", repoUrl: "http://x/" } }), 4, ctx),
    );
    invalid(() => installArgs(install({ chart: { ref: "/etc/charts/x" } }), 4, ctx));
    invalid(() => installArgs(install({ chart: { ref: "./chart" } }), 4, ctx));
    invalid(() => installArgs(install({ chart: { ref: "podinfo" } }), 4, ctx));
    invalid(() => installArgs(install({ chart: { ref: "https://x/podinfo-1.0.0.tgz" } }), 4, ctx));
    invalid(() => installArgs(install({ chart: { ref: "podinfo", repoUrl: "file:///etc" } }), 4, ctx));
    invalid(() => installArgs(install({ chart: { ref: "podinfo", repoUrl: "https://u:p@x/" } }), 4, ctx));
    invalid(() => installArgs(install({ chart: { ref: "oci://u:p@x/charts/a" } }), 4, ctx));
    invalid(() => installArgs(install({ chart: { ref: "oci://x/a", repoUrl: "http://x/" } }), 4, ctx));
    invalid(() => installArgs(install({ labels: { "a,b": "1" } }), 4, ctx));
    invalid(() => installArgs(install({ labels: { a: "1,b=2" } }), 4, ctx));
    invalid(() => installArgs(install({ timeoutSeconds: 0 }), 4, ctx));
  });
});

describe("upgrade args", () => {
  it("uses --reset-then-reuse-values for reuse, and never --install", () => {
    const args = upgradeArgs(upgrade(), 4, ctx);
    expect(args).toEqual([
      "upgrade",
      "web",
      "oci://registry.example/charts/podinfo",
      "--version",
      "6.14.1",
      "--namespace",
      "ws-a",
      "--output",
      "json",
      "--timeout",
      "60s",
      "--values",
      "/tmp/x/values.json",
      "--labels",
      "paas.example/tenant=t1",
      "--reset-then-reuse-values",
      "--wait",
    ]);
    expect(args).not.toContain("--install");
  });

  it("lets reset win over reuse and passes neither when both are false", () => {
    expect(upgradeArgs(upgrade({ resetValues: true, reuseValues: true }), 3, ctx)).toContain("--reset-values");
    expect(upgradeArgs(upgrade({ resetValues: true, reuseValues: true }), 3, ctx).join(" ")).not.toContain("reuse");
    const neither = upgradeArgs(upgrade({ resetValues: false, reuseValues: false, wait: false }), 3, ctx).join(" ");
    expect(neither).not.toMatch(/reuse|reset|--wait/);
  });
});

describe("other verbs", () => {
  it("rollback omits revision 0 (previous) and passes others", () => {
    const base = { namespace: "ws-a", name: "web", timeoutSeconds: 30, wait: false };
    expect(rollbackArgs({ ...base, revision: 0 }, 4)).toEqual([
      "rollback",
      "web",
      "--namespace",
      "ws-a",
      "--timeout",
      "30s",
    ]);
    expect(rollbackArgs({ ...base, revision: 3, wait: true }, 3)).toEqual([
      "rollback",
      "web",
      "3",
      "--namespace",
      "ws-a",
      "--timeout",
      "30s",
      "--wait",
    ]);
    invalid(() => rollbackArgs({ ...base, revision: -1 }, 4));
    invalid(() => rollbackArgs({ ...base, revision: 1.5 }, 4));
  });

  it("uninstall, status, metadata, history, version", () => {
    expect(uninstallArgs({ namespace: "ws-a", name: "web", timeoutSeconds: 12.2 }, 4)).toEqual([
      "uninstall",
      "web",
      "--namespace",
      "ws-a",
      "--timeout",
      "13s",
    ]);
    expect(statusArgs("ws-a", "web")).toEqual(["status", "web", "--namespace", "ws-a", "--output", "json"]);
    expect(statusArgs("ws-a", "web", 4)).toEqual([
      "status",
      "web",
      "--namespace",
      "ws-a",
      "--output",
      "json",
      "--revision",
      "4",
    ]);
    expect(metadataArgs("ws-a", "web")).toEqual(["get", "metadata", "web", "--namespace", "ws-a", "--output", "json"]);
    expect(historyArgs("ws-a", "web")).toEqual(["history", "web", "--namespace", "ws-a", "--output", "json"]);
    expect(versionArgs()).toEqual(["version", "--template", "{{.Version}}"]);
  });

  it("list needs --all on v3 only (v4 lists every status and has no --all)", () => {
    expect(listArgs("ws-a", 3)).toEqual([
      "list",
      "--namespace",
      "ws-a",
      "--output",
      "json",
      "--time-format",
      LIST_TIME_FORMAT,
      "--all",
    ]);
    expect(listArgs("ws-a", 4)).toEqual([
      "list",
      "--namespace",
      "ws-a",
      "--output",
      "json",
      "--time-format",
      LIST_TIME_FORMAT,
    ]);
  });
});

describe("impersonation and render guard args", () => {
  it("impersonate with --kube-as-user only (the API server adds a ServiceAccount's groups)", () => {
    expect(impersonationArgs("system:serviceaccount:paas-ws-a:paas-deployer")).toEqual([
      "--kube-as-user",
      "system:serviceaccount:paas-ws-a:paas-deployer",
    ]);
    expect(impersonationArgs(undefined)).toEqual([]);
    expect(() => impersonationArgs("--kubeconfig=/x")).toThrow(PaasError);
  });

  it("skip crds/ whenever the guard runs", () => {
    expect(renderGuardArgs(["--post-renderer", "x"])).toEqual(["--skip-crds", "--post-renderer", "x"]);
  });
});
