// The render guard as helm's post-renderer: `node render-guard-main.ts <run file>`.
// helm writes the rendered manifests to stdin and applies what comes out of stdout; a
// non-zero exit aborts the install or upgrade before anything is applied.
//
// The run file (JSON, written by the service for this one helm run) holds the policy and
// the path of the report this process writes: helm v4 does not pass a post-renderer
// plugin's stderr on, so the verdict travels through that file, not through helm.
import { readFileSync, writeFileSync } from "node:fs";
import { describeRefusal, type GuardPolicy, guardManifests } from "./render-guard.ts";

interface RunFile {
  policy: GuardPolicy;
  report: string;
}

function main(): number {
  const path = process.argv[2];
  if (!path) {
    process.stderr.write("paas-render-guard: usage: render-guard-main.ts <run file>\n");
    return 2;
  }
  const run = JSON.parse(readFileSync(path, "utf8")) as RunFile;
  const input = readFileSync(0, "utf8");
  const result = guardManifests(input, run.policy);
  // "wx": the report is fresh for each run; never follow a planted link.
  writeFileSync(
    run.report,
    JSON.stringify({ refused: result.refused, dropped: result.dropped, unknownKind: result.unknownKind }),
    {
      mode: 0o600,
      flag: "wx",
    },
  );
  if (result.refused.length > 0) {
    process.stderr.write(`paas-render-guard: refused: ${describeRefusal(result.refused)}\n`);
    return 1;
  }
  process.stdout.write(result.output);
  return 0;
}

process.exitCode = main();
