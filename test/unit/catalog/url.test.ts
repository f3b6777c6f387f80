import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../../src/config.ts";
import { CatalogError, ChartCatalog, parseCatalog } from "../../../src/catalog/catalog.ts";
import { forbiddenHost, ipv6Words, parseSourceUrl } from "../../../src/catalog/url.ts";
import { PaasError } from "../../../src/errors.ts";

function kindOf(fn: () => unknown): string {
  try {
    fn();
    return "ok";
  } catch (err) {
    return err instanceof PaasError ? err.kind : `other: ${String(err)}`;
  }
}

const catalog = new ChartCatalog(
  [
    { url: "https://charts.example.com/stable" },
    { url: "http://repo.example.com:8080/charts/" },
    { url: "oci://registry.example.com/team-a" },
    { url: "oci://[2001:db8::1]:5000/charts" },
    { url: "oci://127.0.0.1:5000/charts" },
    { url: "https://named.example.com/x", name: "named" },
  ],
  { stable: "https://charts.example.com/stable" },
);

/** repo: a chart name with repo_url; oci: an oci:// chart. */
const repo = (url: string) => kindOf(() => catalog.resolve("podinfo", "", url));
const oci = (ref: string) => kindOf(() => catalog.resolve(ref, "", ""));

describe("chart catalogue: matching parsed URLs", () => {
  it.each([
    "https://charts.example.com/stable",
    "https://charts.example.com/stable/",
    "https://CHARTS.Example.COM/stable",
    "HTTPS://charts.example.com:443/stable",
    "https://charts.example.com/stable/sub/dir",
    "http://repo.example.com:8080/charts",
    "http://repo.example.com:8080/charts/more/",
  ])("allows the HTTP repository %s", (url) => {
    expect(repo(url)).toBe("ok");
  });

  it.each([
    ["a sibling sharing a string prefix (segment boundary)", "https://charts.example.com/stablex"],
    ["a sibling with a dash", "https://charts.example.com/stable-evil"],
    ["the parent path", "https://charts.example.com/"],
    ["the bare host", "https://charts.example.com"],
    ["a path in another case (paths are case-sensitive)", "https://charts.example.com/Stable"],
    ["http instead of https", "http://charts.example.com/stable"],
    ["another port", "https://charts.example.com:8443/stable"],
    ["the default port where the entry has 8080", "http://repo.example.com/charts"],
    ["a host with the entry as a prefix", "https://charts.example.com.evil.test/stable"],
    ["a host with the entry as a suffix", "https://evilcharts.example.com/stable"],
    ["another host", "https://evil.test/stable"],
    ["loopback, not in the catalogue", "http://127.0.0.1:8879/"],
  ])("denies %s", (_what, url) => {
    expect(repo(url)).toBe("permission_denied");
  });

  it.each([
    "oci://registry.example.com/team-a/podinfo",
    "oci://REGISTRY.example.com/team-a/podinfo",
    "oci://registry.example.com:443/team-a/podinfo",
    "oci://registry.example.com/team-a/sub/podinfo",
    "oci://registry.example.com/team-a/podinfo:6.13.0",
    `oci://registry.example.com/team-a/podinfo@sha256:${"a".repeat(64)}`,
    "oci://[2001:db8::1]:5000/charts/podinfo",
    "oci://[2001:DB8:0:0:0:0:0:1]:5000/charts/podinfo",
    "oci://127.0.0.1:5000/charts/podinfo",
  ])("allows the OCI reference %s", (ref) => {
    expect(oci(ref)).toBe("ok");
  });

  it.each([
    "oci://registry.example.com/team-ab/podinfo",
    "oci://registry.example.com/team-b/podinfo",
    "oci://registry.example.com/podinfo",
    "oci://registry.example.com:5000/team-a/podinfo",
    "oci://[2001:db8::2]:5000/charts/podinfo",
    "oci://[2001:db8::1]:5001/charts/podinfo",
    "oci://127.0.0.1:5001/charts/podinfo",
    "oci://localhost:5000/charts/podinfo",
    "oci://127.0.0.2:5000/charts/podinfo",
  ])("denies the OCI reference %s", (ref) => {
    expect(oci(ref)).toBe("permission_denied");
  });

  it("normalises what helm is given and resolves named repositories", () => {
    expect(catalog.resolve("OCI://Registry.Example.com/team-a/podinfo", "6.13.0", "")).toEqual({
      ref: "oci://registry.example.com/team-a/podinfo",
      version: "6.13.0",
    });
    expect(catalog.resolve("podinfo", "", "HTTPS://Charts.Example.com/stable/")).toEqual({
      ref: "podinfo",
      repoUrl: "https://charts.example.com/stable/",
    });
    expect(catalog.resolve("stable/nginx", "", "")).toEqual({
      ref: "nginx",
      repoUrl: "https://charts.example.com/stable",
    });
    expect(catalog.resolve("named/nginx", "1.0.0", "")).toEqual({
      ref: "nginx",
      repoUrl: "https://named.example.com/x",
      version: "1.0.0",
    });
    expect(kindOf(() => catalog.resolve("other/nginx", "", ""))).toBe("invalid_argument");
  });

  it("without a catalogue allows every well-formed source except link-local and metadata addresses", () => {
    const open = ChartCatalog.allowAll({});
    expect(open.restricted).toBe(false);
    expect(kindOf(() => open.resolve("podinfo", "", "https://anything.example.org/charts"))).toBe("ok");
    expect(kindOf(() => open.resolve("oci://anything.example.org/x/podinfo", "", ""))).toBe("ok");
    expect(kindOf(() => open.resolve("podinfo", "", "http://169.254.169.254/latest"))).toBe("permission_denied");
    expect(kindOf(() => open.resolve("podinfo", "", "file:///etc"))).toBe("invalid_argument");
  });

  it("re-checks recorded sources", () => {
    expect(kindOf(() => catalog.check({ ref: "oci://registry.example.com/team-a/podinfo" }))).toBe("ok");
    expect(kindOf(() => catalog.check({ ref: "oci://registry.example.com/team-b/podinfo" }))).toBe("permission_denied");
    expect(kindOf(() => catalog.check({ ref: "podinfo", repoUrl: "https://evil.test/" }))).toBe("permission_denied");
  });
});

describe("chart catalogue: malformed references are INVALID_ARGUMENT", () => {
  it.each([
    ["credentials", "https://user:pw@charts.example.com/stable"],
    ["a user name", "https://user@charts.example.com/stable"],
    ["an '@' that hides the real host", "https://charts.example.com@evil.test/stable"],
    ["a backslash trick", "https://charts.example.com\\@evil.test/stable"],
    ["encoded dots", "https://charts.example.com/stable/%2e%2e/private"],
    ["upper-case encoded dots", "https://charts.example.com/stable/%2E%2E"],
    ["mixed encoded dots", "https://charts.example.com/stable/.%2e/x"],
    ["double-encoded dots", "https://charts.example.com/stable/%252e%252e/x"],
    ["an encoded slash", "https://charts.example.com/stable%2f..%2fprivate"],
    ["dot segments", "https://charts.example.com/stable/../private"],
    ["a single dot segment", "https://charts.example.com/./stable"],
    ["an empty segment", "https://charts.example.com//stable"],
    ["a query", "https://charts.example.com/stable?x=1"],
    ["a fragment", "https://charts.example.com/stable#x"],
    ["file://", "file:///srv/charts"],
    ["ftp://", "ftp://charts.example.com/stable"],
    ["no scheme", "charts.example.com/stable"],
    ["a decimal IPv4 spelling", "http://2852039166/"],
    ["a hex IPv4 spelling", "http://0xa9fea9fe/"],
    ["an octal IPv4 spelling", "http://0251.0376.0251.0376/"],
    ["a short IPv4 spelling", "http://169.254.43518/"],
    ["a trailing dot", "http://metadata.google.internal./"],
    ["a percent-encoded host", "http://%6d%65tadata.google.internal/"],
    ["an IPv6 zone id", "http://[fe80::1%25eth0]/"],
    ["a broken IPv6 literal", "http://[2001:db8::1::2]/"],
    ["port 0", "http://charts.example.com:0/"],
    ["a port above 65535", "http://charts.example.com:99999/"],
    ["a port with a leading zero", "http://charts.example.com:0443/"],
    ["a space", "https://charts.example.com/sta ble"],
    ["a newline", "https://charts.example.com/stable\n"],
    ["no host", "https:///stable"],
  ])("repo_url with %s", (_what, url) => {
    expect(repo(url)).toBe("invalid_argument");
  });

  it.each([
    ["a local path", "/etc/passwd"],
    ["a relative path", "./charts/x"],
    ["a parent path", "../x"],
    ["a home path", "~/x"],
    ["dots inside", "a/../b"],
    ["an encoded path", "charts%2fx"],
    ["a Windows path", "C:\\x"],
    ["file://", "file:///etc/passwd"],
    ["an http URL as chart", "https://charts.example.com/stable/x-1.0.0.tgz"],
    ["three segments", "a/b/c"],
    ["oci:// without a path", "oci://registry.example.com"],
    ["oci:// ending in a slash", "oci://registry.example.com/team-a/"],
    ["oci:// with credentials", "oci://u:p@registry.example.com/team-a/podinfo"],
    ["oci:// with encoded dots", "oci://registry.example.com/team-a/%2e%2e/team-b/podinfo"],
    ["oci:// with dot segments", "oci://registry.example.com/team-a/../team-b/podinfo"],
    ["oci:// with a query", "oci://registry.example.com/team-a/podinfo?x"],
    ["oci:// with a bad tag", "oci://registry.example.com/team-a/podinfo:-bad"],
    ["oci: without slashes", "oci:registry.example.com/team-a/podinfo"],
    ["empty", ""],
  ])("chart with %s", (_what, ref) => {
    expect(oci(ref)).toBe("invalid_argument");
  });

  it("refuses repo_url with an oci:// chart or a repo/chart", () => {
    expect(
      kindOf(() =>
        catalog.resolve("oci://registry.example.com/team-a/podinfo", "", "https://charts.example.com/stable"),
      ),
    ).toBe("invalid_argument");
    expect(kindOf(() => catalog.resolve("stable/nginx", "", "https://charts.example.com/stable"))).toBe(
      "invalid_argument",
    );
    expect(kindOf(() => catalog.resolve("podinfo", "--devel", "https://charts.example.com/stable"))).toBe(
      "invalid_argument",
    );
  });
});

describe("link-local and metadata addresses are PERMISSION_DENIED, even without a catalogue", () => {
  const open = ChartCatalog.allowAll();
  it.each([
    "http://169.254.169.254/latest/meta-data",
    "http://169.254.0.1/",
    "https://169.254.255.255:8443/x",
    "http://[fe80::1]/",
    "http://[FEBF::1]/",
    "http://[fe80::a9fe:a9fe]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[0:0:0:0:0:ffff:169.254.169.254]/",
    "http://[::169.254.169.254]/",
    "http://[::ffff:0:169.254.169.254]/",
    "http://[64:ff9b::169.254.169.254]/",
    "http://[fd00:ec2::254]/",
    "http://100.100.100.200/latest",
    "http://[::ffff:100.100.100.200]/",
    "http://metadata.google.internal/computeMetadata/v1",
    "http://METADATA.GOOGLE.INTERNAL/",
    "http://metadata/computeMetadata/v1",
  ])("%s", (url) => {
    expect(kindOf(() => open.resolve("podinfo", "", url))).toBe("permission_denied");
    expect(kindOf(() => catalog.resolve("podinfo", "", url))).toBe("permission_denied");
  });

  it("as oci:// references too", () => {
    expect(kindOf(() => open.resolve("oci://169.254.169.254/charts/x", "", ""))).toBe("permission_denied");
    expect(kindOf(() => open.resolve("oci://[::ffff:169.254.169.254]:5000/charts/x", "", ""))).toBe(
      "permission_denied",
    );
    expect(kindOf(() => open.resolve("oci://metadata.google.internal/charts/x", "", ""))).toBe("permission_denied");
  });

  it("but not their neighbours", () => {
    for (const host of [
      "169.253.255.255",
      "169.255.0.1",
      "100.100.100.201",
      "[fec0::1]",
      "[::1]",
      "[::ffff:127.0.0.1]",
      "metadata.google.internal.evil.test",
      "10.0.0.1",
    ]) {
      expect(forbiddenHost(parseSourceUrl(`http://${host}/`, "u", ["http"]).host)).toBeUndefined();
    }
  });

  it("parses IPv6 words", () => {
    expect(ipv6Words("::")).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(ipv6Words("::ffff:1.2.3.4")).toEqual([0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304]);
    expect(ipv6Words("1:2:3:4:5:6:7:8")).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(ipv6Words("1::2::3")).toBeUndefined();
    expect(ipv6Words("1:2:3:4:5:6:7:8:9")).toBeUndefined();
    expect(ipv6Words("::1.2.3.256")).toBeUndefined();
  });
});

describe("chart catalogue configuration", () => {
  it("reads {sources: [...]} or a bare array of strings and {url, name}", () => {
    expect(
      parseCatalog('{"sources": ["oci://r.example/c", {"url": "https://h.example/x", "name": "h"}]}', "t"),
    ).toEqual([{ url: "oci://r.example/c" }, { url: "https://h.example/x", name: "h" }]);
    expect(parseCatalog('["https://h.example/x"]', "t")).toEqual([{ url: "https://h.example/x" }]);
  });

  it.each([
    ["broken JSON", "{"],
    ["an unknown top-level field", '{"source": []}'],
    ["an unknown entry field", '{"sources": [{"url": "https://h.example/", "user": "x"}]}'],
    ["a number", '{"sources": [1]}'],
    ["a missing url", '{"sources": [{"name": "x"}]}'],
    ["not a list", '{"sources": "https://h.example/"}'],
  ])("refuses %s", (_what, text) => {
    expect(() => parseCatalog(text, "t")).toThrow(CatalogError);
  });

  it.each([
    ["credentials", "https://u:p@h.example/"],
    ["a query", "https://h.example/?x"],
    ["a link-local address", "http://169.254.169.254/"],
    ["a metadata host", "oci://metadata.google.internal/x"],
    ["file://", "file:///srv/charts"],
    ["a non-canonical IPv4", "http://2852039166/"],
  ])("refuses an entry with %s", (_what, url) => {
    expect(() => new ChartCatalog([{ url }])).toThrow(CatalogError);
  });

  it("refuses bad names and conflicting names", () => {
    expect(() => new ChartCatalog([{ url: "https://h.example/", name: "Bad_Name" }])).toThrow(CatalogError);
    expect(() => new ChartCatalog([{ url: "oci://h.example/x", name: "x" }])).toThrow(/only HTTP repositories/);
    expect(() => new ChartCatalog([{ url: "https://a.example/", name: "x" }], { x: "https://b.example/" })).toThrow(
      /twice/,
    );
    expect(new ChartCatalog([{ url: "https://a.example/x", name: "x" }], { x: "https://A.example/x" }).restricted).toBe(
      true,
    );
  });

  it("an empty catalogue allows nothing but still lets HELM_REPOSITORIES through", () => {
    const c = new ChartCatalog([], { stable: "https://charts.example.com/stable" });
    expect(kindOf(() => c.resolve("oci://r.example/c/x", "", ""))).toBe("permission_denied");
    expect(kindOf(() => c.resolve("stable/nginx", "", ""))).toBe("ok");
    expect(kindOf(() => c.resolve("nginx", "", "https://charts.example.com/stable"))).toBe("ok");
    expect(c.sources).toEqual(["stable=https://charts.example.com/stable"]);
  });
});

describe("CHART_CATALOG_FILE, CHART_CATALOG and HELM_REPOSITORIES", () => {
  const KEY = "k".repeat(32);
  it("without either, there is no catalogue (every well-formed source is allowed)", () => {
    const c = loadConfig({ API_KEY: KEY, HELM_REPOSITORIES: "stable=https://charts.example.com/stable" });
    expect(c.catalog.restricted).toBe(false);
    expect(kindOf(() => c.catalog.resolve("stable/nginx", "", ""))).toBe("ok");
    expect(kindOf(() => c.catalog.resolve("oci://anything.example/x/y", "", ""))).toBe("ok");
  });

  it("adds up the file, the inline JSON and the named repositories", () => {
    const dir = mkdtempSync(join(tmpdir(), "catalog-"));
    const file = join(dir, "catalog.json");
    writeFileSync(file, JSON.stringify({ sources: ["oci://r.example/charts"] }));
    const c = loadConfig({
      API_KEY: KEY,
      CHART_CATALOG_FILE: file,
      CHART_CATALOG: '["https://h.example/repo"]',
      HELM_REPOSITORIES: "stable=https://charts.example.com/stable",
    });
    expect(c.catalog.restricted).toBe(true);
    expect(c.catalog.sources).toEqual([
      "oci://r.example/charts",
      "https://h.example/repo",
      "stable=https://charts.example.com/stable",
    ]);
    expect(kindOf(() => c.catalog.resolve("oci://r.example/charts/x", "", ""))).toBe("ok");
    expect(kindOf(() => c.catalog.resolve("x", "", "https://h.example/repo"))).toBe("ok");
    expect(kindOf(() => c.catalog.resolve("x", "", "https://charts.example.com/stable"))).toBe("ok");
    expect(kindOf(() => c.catalog.resolve("oci://r.example/other/x", "", ""))).toBe("permission_denied");
    // CHART_CATALOG alone configures a catalogue too.
    expect(loadConfig({ API_KEY: KEY, CHART_CATALOG: "[]" }).catalog.restricted).toBe(true);
  });

  it("stops the start with a one-line reason for a broken catalogue", () => {
    expect(() => loadConfig({ API_KEY: KEY, CHART_CATALOG: "{" })).toThrow(ConfigError);
    expect(() => loadConfig({ API_KEY: KEY, CHART_CATALOG: '["http://169.254.169.254/"]' })).toThrow(/link-local/);
    expect(() => loadConfig({ API_KEY: KEY, CHART_CATALOG_FILE: "/nonexistent/catalog.json" })).toThrow(
      /cannot be read/,
    );
    expect(() => loadConfig({ API_KEY: KEY, HELM_REPOSITORIES: "x=https://u:p@h.example/" })).toThrow(ConfigError);
  });
});
