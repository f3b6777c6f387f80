import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JsonObject } from "../domain/release.ts";

/**
 * withValuesFile writes `values` as JSON (a subset of YAML, so helm reads it as is) into
 * a fresh private directory (0700) as a 0600 file, runs `fn` with its path and deletes
 * the directory afterwards, whatever happens. Values may hold secrets: they never go on
 * the command line (visible in /proc and logs), and no other local user can read them.
 */
export async function withValuesFile<T>(
  values: JsonObject,
  fn: (path: string) => Promise<T>,
  parentDir = tmpdir(),
): Promise<T> {
  // Serialise before touching the disk so that a bad value tree leaves nothing behind.
  const content = JSON.stringify(values ?? {});
  // mkdtemp creates the directory with mode 0700.
  const dir = await mkdtemp(join(parentDir, "paas-helm-values-"));
  try {
    const path = join(dir, "values.json");
    // "wx": never follow or overwrite something planted at that path.
    await writeFile(path, content, { mode: 0o600, flag: "wx" });
    return await fn(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
