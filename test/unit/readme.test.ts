/**
 * README.md and src/rest/README.md refer only to what exists: every `npm run <script>` (and
 * `npm test` / `npm start`) is a script of package.json, every repository path in code spans
 * and code blocks exists, and every relative link and #anchor resolves. The commands themselves
 * run against the testbed in test/e2e/readme-commands.test.ts.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import {
  DOCUMENTS,
  REPO,
  fencedBlocks,
  headingAnchors,
  inlineCode,
  links,
  readDocument,
  shellCommands,
  type FencedBlock,
} from "../support/readme.ts";

const scripts = Object.keys(
  (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts,
);

/** Every piece of code a document shows: code spans and fenced blocks. */
function codeOf(file: string): string[] {
  const text = readDocument(file);
  return [...inlineCode(file, text), ...fencedBlocks(file, text).map((b) => b.text)];
}

/** npmScripts returns the script names that `npm run X`, `npm run-script X`, `npm test`, `npm start` name. */
function npmScripts(code: string): string[] {
  const names: string[] = [];
  for (const m of code.matchAll(/\bnpm\s+(?:run|run-script)\s+([\w:.-]+)/g)) names.push(m[1]!);
  for (const m of code.matchAll(/\bnpm\s+(test|start|stop|restart)\b/g)) names.push(m[1]!);
  return names;
}

// Top-level entries of the repository that are part of it (not git-ignored, not dot files):
// a path in a document that starts with one of them is a claim that the path exists.
const IGNORED = new Set(
  readFileSync(join(REPO, ".gitignore"), "utf8")
    .split("\n")
    .map((l) => l.trim().replace(/\/$/, ""))
    .filter((l) => l !== "" && !l.startsWith("#")),
);
const TOP_LEVEL = new Set(readdirSync(REPO).filter((n) => !n.startsWith(".") && !IGNORED.has(n)));

/** repositoryPaths returns the tokens of `code` that name a path inside the repository. */
function repositoryPaths(code: string): string[] {
  const out: string[] = [];
  // A path token: not glued to a URL or another path before it (`/docs`, `oci://host/x`).
  for (const m of code.matchAll(/(?<![\w/:.@+~-])(?:\.\/)?[\w@.+-]+(?:\/[\w@.+-]*)*/g)) {
    const token = m[0].replace(/^\.\//, "");
    const first = token.split("/")[0]!;
    if (TOP_LEVEL.has(first)) out.push(token);
  }
  return out;
}

describe("npm scripts named in the documents", () => {
  for (const file of DOCUMENTS) {
    it(`${file}: every npm script it names exists in package.json`, () => {
      const named = [...new Set(codeOf(file).flatMap(npmScripts))];
      const missing = named.filter((n) => !scripts.includes(n));
      expect(missing, `named in ${file} but not in package.json: ${missing.join(", ")}`).toEqual([]);
    });
  }

  it("finds the scripts README.md names (the extraction works)", () => {
    const named = new Set(codeOf("README.md").flatMap(npmScripts));
    for (const n of ["dev", "test", "test:unit", "testbed:up", "testbed:down", "generate", "typecheck"])
      expect(named).toContain(n);
  });
});

describe("repository paths named in the documents", () => {
  for (const file of DOCUMENTS) {
    it(`${file}: every path in code spans and code blocks exists`, () => {
      const paths = [...new Set(codeOf(file).flatMap(repositoryPaths))];
      const missing = paths.filter((p) => !existsSync(join(REPO, p)));
      expect(missing, `named in ${file} but missing: ${missing.join(", ")}`).toEqual([]);
    });
  }

  it("finds README.md's paths (the extraction works)", () => {
    const paths = new Set(codeOf("README.md").flatMap(repositoryPaths));
    for (const p of [
      "src/errors.ts",
      "k8s/rbac.yaml",
      "clients/paas-client.ts",
      "proto/paas/v1/",
      "scripts/node24.sh",
      "k8s/",
    ])
      expect(paths).toContain(p);
    // URL paths and chart references are not repository paths.
    for (const p of ["docs", "openapi.json", "charts/podinfo", "nginx"]) expect(paths).not.toContain(p);
  });

  it("recognises only tokens that start at a repository entry", () => {
    expect(repositoryPaths("curl http://127.0.0.1:8000/src/x /docs oci://h/k8s/y")).toEqual([]);
    expect(repositoryPaths('export PATH="$(bash scripts/node24.sh):$PATH"')).toEqual(["scripts/node24.sh"]);
    expect(repositoryPaths('import { x } from "./clients/paas-client.ts";')).toEqual(["clients/paas-client.ts"]);
  });
});

describe("links in the documents", () => {
  for (const file of DOCUMENTS) {
    it(`${file}: every relative link and #anchor resolves`, () => {
      const text = readDocument(file);
      const broken: string[] = [];
      for (const { target } of links(file, text)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: ...
        const [path, anchor] = target.split("#", 2) as [string, string | undefined];
        const resolved = path === "" ? join(REPO, file) : join(REPO, dirname(file), decodeURIComponent(path));
        if (!existsSync(resolved)) {
          broken.push(`${target} (no ${relative(REPO, resolved)})`);
          continue;
        }
        if (anchor !== undefined && resolved.endsWith(".md")) {
          const other = relative(REPO, resolved);
          if (!headingAnchors(other, readFileSync(resolved, "utf8")).has(anchor))
            broken.push(`${target} (no heading #${anchor} in ${other})`);
        }
      }
      expect(broken).toEqual([]);
    });
  }

  it("finds README.md's links and anchors (the extraction works)", () => {
    const text = readDocument("README.md");
    const targets = links("README.md", text).map((l) => l.target);
    expect(targets).toContain("src/rest/README.md");
    expect(targets).toContain("#api-keys-and-scopes");
    const anchors = headingAnchors("README.md", text);
    expect(anchors).toContain("api-keys-and-scopes");
    expect(anchors).toContain("rest-the-old-operators-api");
    expect(anchors).toContain("grpc-and-connect-errors");
  });
});

describe("shell blocks split into commands", () => {
  const block = (text: string): FencedBlock => ({ file: "x.md", line: 10, lang: "sh", text });

  it("joins backslash continuations and keeps README line numbers", () => {
    const cmds = shellCommands(block("curl -s \\\n  -d '{}' \\\n  http://x\n\ngrpcurl list\nnpx buf curl http://y"));
    expect(cmds.map((c) => [c.line, c.text.split("\n")[0]])).toEqual([
      [11, "curl -s \\"],
      [15, "grpcurl list"],
      [16, "npx buf curl http://y"],
    ]);
  });

  it("keeps multi-line constructs (loops, quotes, heredocs) together and drops comments", () => {
    const cmds = shellCommands(
      block("# setup\nfor i in 1 2; do\n  echo $i\ndone\necho 'a\nb'\ncat <<EOF\nx\nEOF\necho end"),
    );
    expect(cmds.map((c) => c.text)).toEqual([
      "for i in 1 2; do\n  echo $i\ndone",
      "echo 'a\nb'",
      "cat <<EOF\nx\nEOF",
      "echo end",
    ]);
  });

  it("splits README.md's gRPC block into its four commands", () => {
    const grpc = fencedBlocks("README.md", readDocument("README.md")).find(
      (b) => b.lang === "sh" && b.text.includes("grpcurl"),
    );
    expect(grpc).toBeDefined();
    const cmds = shellCommands(grpc!).map((c) => c.text.split(/\s/)[0]);
    expect(cmds.length).toBeGreaterThanOrEqual(4);
    expect(cmds).toEqual(expect.arrayContaining(["grpcurl", "npx", "grpc-health-probe"]));
  });
});
