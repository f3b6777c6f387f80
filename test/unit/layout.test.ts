import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, dirname, extname, join, normalize, relative } from "node:path";
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
    if (existsSync(join(ROOT, dir))) {
      // Outside src/: a file of that name in the same directory of the repository (any
      // extension); at the top, README.md is tested by readme.test.ts.
      const other = readdirSync(join(ROOT, dir)).find((f) => basename(f, extname(f)).toLowerCase() === name);
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
    expect(sourceOf("test/unit/readme.test.ts")).toBe("README.md");
    expect(sourceOf("test/unit/kube/no-such-file.test.ts")).toBeUndefined();
  });

  it("test helpers live in test/support/ only: fixtures hold data and fake programs, no TypeScript", () => {
    expect(files("test/fixtures").filter((f) => f.endsWith(".ts"))).toEqual([]);
    expect(
      files("test").filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && !f.startsWith("test/support/")),
    ).toEqual([]);
  });

  it('every import in src/ follows the README\'s "Where things live" table', () => {
    const rules = layerRules();
    expect(Object.keys(rules)).toEqual(
      expect.arrayContaining(["server", "services", "operations", "domain", "process"]),
    );
    const folders = readdirSync(join(ROOT, "src"), { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
    // Every folder of src/ has its row, and every row its folder.
    expect(folders.sort()).toEqual(Object.keys(rules).sort());
    const broken: string[] = [];
    for (const file of files("src").filter((f) => f.endsWith(".ts") && f.split("/").length > 2)) {
      const from = file.split("/")[1]!;
      for (const m of readFileSync(join(ROOT, file), "utf8").matchAll(/from "(\.{1,2}\/[^"]+)"/g)) {
        const target = normalize(join(dirname(file), m[1]!))
          .split("\\")
          .join("/");
        if (!target.startsWith("src/")) continue;
        const parts = target.split("/");
        const to = parts.length > 2 ? parts[1]! : parts[1]!;
        if (parts.length === 2 ? to === "errors.ts" : to === from || rules[from]!.includes(to)) continue;
        broken.push(`${file} imports ${target}`);
      }
    }
    expect(broken).toEqual([]);
  });
});

/** layerRules reads the README's table: folder → the folders it may import. */
function layerRules(): Record<string, string[]> {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const start = readme.indexOf("| folder | what it owns | may import |");
  expect(start).toBeGreaterThan(0);
  const rows = readme.slice(start).split("\n").slice(2);
  const rules: Record<string, string[]> = {};
  for (const row of rows) {
    if (!row.startsWith("|")) break;
    const cells = row.split(" | ");
    const folder = /^\| `([a-z]+)\/`/.exec(row)?.[1];
    if (!folder || folder === "src") continue;
    rules[folder] = [...cells.at(-1)!.matchAll(/`([a-z]+)\/`/g)].map((x) => x[1]!);
  }
  return rules;
}
