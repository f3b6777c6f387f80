import { existsSync, readdirSync } from "node:fs";
import { basename, dirname, extname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// The repository's naming conventions (README, Development): file names unique across src/,
// tests named after the source file they test, helpers only in test/support/.

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** files lists every file under dir (relative to ROOT, "/"-separated). */
function files(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(ROOT, join(e.parentPath, e.name)).split("\\").join("/"))
    .sort();
}

/**
 * sourceOf names the file a test in a tier tests: test/<tier>/<dir>/<name>[.<aspect>].test.ts
 * tests src/<dir>/<name>.ts, or <dir>/<name>.* outside src/ (scripts/openapi/plugin.ts,
 * k8s/rbac.yaml); undefined when there is none.
 */
function sourceOf(test: string): string | undefined {
  const [, , ...rest] = test.split("/");
  const dir = dirname(rest.join("/"));
  const base = basename(test, ".test.ts");
  const names = base.includes(".") ? [base, base.slice(0, base.lastIndexOf("."))] : [base];
  for (const name of names) {
    const inSrc = join("src", dir, `${name}.ts`);
    if (existsSync(join(ROOT, inSrc))) return inSrc;
    if (dir !== "." && existsSync(join(ROOT, dir))) {
      const other = readdirSync(join(ROOT, dir)).find((f) => basename(f, extname(f)) === name);
      if (other) return join(dir, other);
    }
  }
  return undefined;
}

describe("layout", () => {
  it("file names are unique across src/", () => {
    const byName = new Map<string, string[]>();
    for (const f of files("src")) byName.set(basename(f), [...(byName.get(basename(f)) ?? []), f]);
    const duplicates = [...byName.values()].filter((paths) => paths.length > 1);
    expect(duplicates).toEqual([]);
    expect(byName.size).toBeGreaterThan(50);
  });

  it("tests in the unit, service, adapter and integration tiers are named after the file they test", () => {
    const tests = ["unit", "service", "adapter", "integration"].flatMap((tier) => files(join("test", tier)));
    expect(tests.length).toBeGreaterThan(50);
    // This file tests the layout, not one source.
    const unmatched = tests.filter(
      (t) => t !== "test/unit/layout.test.ts" && (!t.endsWith(".test.ts") || !sourceOf(t)),
    );
    expect(unmatched).toEqual([]);
    expect(sourceOf("test/unit/kube/watch/list-watch.test.ts")).toBe("src/kube/watch/list-watch.ts");
    expect(sourceOf("test/unit/config.pod-security.test.ts")).toBe("src/config.ts");
    expect(sourceOf("test/integration/k8s/rbac.test.ts")).toBe("k8s/rbac.yaml");
    expect(sourceOf("test/unit/kube/no-such-file.test.ts")).toBeUndefined();
  });

  it("test helpers live in test/support/ only: fixtures hold data and fake programs, no TypeScript", () => {
    expect(files("test/fixtures").filter((f) => f.endsWith(".ts"))).toEqual([]);
    expect(
      files("test").filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && !f.startsWith("test/support/")),
    ).toEqual([]);
  });
});
