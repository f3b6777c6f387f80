// Adds lockfile entries for @bufbuild/buf's platform packages that the package registry
// reachable here does not serve (darwin, win32, linux-armv7). Without them `npm ci` refuses
// the lockfile as out of sync with @bufbuild/buf's optionalDependencies; with them it skips
// the foreign-platform packages as it always does. Run after `npm install` changes the lockfile:
//   node scripts/complete-lockfile.mjs
import { readFileSync, writeFileSync } from "node:fs";

const path = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(path, "utf8"));
const packages = lock.packages;
const platforms = {
  "darwin-arm64": ["darwin", "arm64"],
  "darwin-x64": ["darwin", "x64"],
  "linux-aarch64": ["linux", "arm64"],
  "linux-armv7": ["linux", "arm"],
  "linux-x64": ["linux", "x64"],
  "win32-arm64": ["win32", "arm64"],
  "win32-x64": ["win32", "x64"],
};
let added = 0;
for (const [name, entry] of Object.entries(packages)) {
  if (!name.endsWith("node_modules/@bufbuild/buf") || !entry.optionalDependencies) continue;
  for (const [dep, version] of Object.entries(entry.optionalDependencies)) {
    const key = `${name}-${dep.slice("@bufbuild/buf-".length)}`;
    const platform = platforms[dep.slice("@bufbuild/buf-".length)];
    if (packages[key] || !platform) continue;
    packages[key] = {
      version,
      cpu: [platform[1]],
      dev: true,
      license: "Apache-2.0",
      optional: true,
      os: [platform[0]],
    };
    added++;
  }
}
lock.packages = Object.fromEntries(
  Object.entries(packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : a > b ? 1 : 0)),
);
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`complete-lockfile: added ${added} entries`);
