import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { PaasError } from "../errors.ts";
import type { ResolvedChart } from "./chart-labels.ts";
import { pullArgs } from "./args.ts";
import { readChartArchive } from "./chart-archive.ts";
import type { ChartArgOptions } from "./chart-source.ts";
import type { ClassifyContext } from "./helm-errors.ts";
import type { HelmRunner, HelmRunOptions } from "./runner.ts";
import type { ChartSource } from "../domain/release.ts";

/** PulledChart is a chart source resolved and downloaded for one install or upgrade. */
export interface PulledChart extends ResolvedChart {
  /** Absolute path of the archive, inside the run's private directory. */
  archive: string;
  /** Chart name from the archive's Chart.yaml. */
  name: string;
  /** The CRD files the chart (or a subchart) ships in crds/; absent when none (src/helm/chart-archive.ts). */
  crds?: string[];
}

// "Digest: sha256:…" as helm v3 and v4 print it after pulling from a registry
// (pkg/registry: the digest of the manifest the tag resolved to, the registry's
// Docker-Content-Digest). HTTP repositories print nothing of the kind.
const DIGEST_LINE = /^Digest: (sha256:[0-9a-f]{64})\s*$/m;

/**
 * pullChart runs `helm pull` for `source` into the empty private directory `dir` (with
 * the run's own helm home in `options.env`) and reads what arrived: the archive, the
 * exact version from its Chart.yaml (a version range or no version is resolved by helm
 * here, once) and, for oci:// charts, the manifest digest helm reports. Installing that
 * archive afterwards means the recorded version and digest are those of what was
 * installed: nothing is resolved a second time.
 */
export async function pullChart(
  run: HelmRunner,
  ctx: ClassifyContext,
  source: ChartSource,
  chartOptions: ChartArgOptions,
  dir: string,
  options: HelmRunOptions,
): Promise<PulledChart> {
  let stderr = "";
  const stdout = await run(
    pullArgs(source, dir, chartOptions),
    { ...ctx, verb: "pull" },
    { ...options, onStderr: (s) => (stderr = s) },
  );
  // One file: helm names it after the archive URL (OCI: <name>-<version>.tgz; an HTTP
  // repository's index may use any name). A provenance file would come only with --prov.
  const archives = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isFile() && !e.name.endsWith(".prov"))
    .map((e) => e.name);
  if (archives.length !== 1) {
    throw new PaasError("internal", "helm pull did not leave exactly one chart archive", {
      cause: new Error(`found ${JSON.stringify(archives)}`),
    });
  }
  const archive = join(dir, archives[0]!);
  const chart = await readChartArchive(archive);
  const digest = source.ref.trim().startsWith("oci://") ? DIGEST_LINE.exec(`${stdout}\n${stderr}`)?.[1] : undefined;
  return {
    archive,
    name: chart.name,
    version: chart.version,
    ...(digest ? { digest } : {}),
    ...(chart.crds ? { crds: chart.crds } : {}),
  };
}
