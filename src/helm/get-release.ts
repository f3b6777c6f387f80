import { metadataArgs, statusArgs } from "./args.ts";
import { parseMetadata, parseRelease, withMetadata } from "./parse.ts";
import type { HelmRunner, HelmRunOptions } from "./runner.ts";
import type { ReleaseInfo } from "../domain/release.ts";

/**
 * getRelease reads the current revision of a release with two helm runs in parallel:
 * `helm status -o json` carries info, notes and user values but has its chart stripped
 * (v3 and v4 both do `rel.Chart = nil`), and `helm get metadata -o json` carries the
 * chart's name, version and app version. Should a write land between the two runs, the
 * status of the revision the metadata describes is read again, so the result is never a
 * mix of two revisions.
 */
export async function getRelease(
  run: HelmRunner,
  namespace: string,
  name: string,
  options: HelmRunOptions,
): Promise<ReleaseInfo> {
  const [statusOut, metaOut] = await Promise.all([
    run(statusArgs(namespace, name), { verb: "status", namespace, name }, options),
    run(metadataArgs(namespace, name), { verb: "get metadata", namespace, name }, options),
  ]);
  let release = parseRelease(statusOut);
  const meta = parseMetadata(metaOut);
  if (meta.revision !== release.revision) {
    release = parseRelease(
      await run(statusArgs(namespace, name, meta.revision), { verb: "status", namespace, name }, options),
    );
  }
  return withMetadata(release, meta);
}
