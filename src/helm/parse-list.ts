import { PaasError } from "../errors.ts";
import { asObject, date, int, parseJsonOutput, status, str } from "./parse-json.ts";
import type { ReleaseInfo, RevisionInfo } from "../domain/release.ts";

/** parseHistory reads `helm history -o json` into revisions, oldest first. */
export function parseHistory(stdout: string): RevisionInfo[] {
  return rows(stdout)
    .map((row) => ({
      revision: int(row, "revision"),
      updated: date(row.updated),
      status: status(row.status),
      chart: str(row, "chart"),
      appVersion: str(row, "app_version"),
      description: str(row, "description"),
    }))
    .sort((a, b) => a.revision - b.revision);
}

/**
 * parseList reads `helm list -o json` (run with --time-format RFC 3339). helm list prints
 * neither values, notes nor descriptions, and joins chart name and version into one
 * "name-version" string, which splitChart takes apart.
 */
export function parseList(stdout: string): ReleaseInfo[] {
  return rows(stdout)
    .map((row) => {
      const { name: chart, version: chartVersion } = splitChart(str(row, "chart"));
      return {
        name: str(row, "name"),
        namespace: str(row, "namespace"),
        revision: int(row, "revision"),
        status: status(row.status),
        chart,
        chartVersion,
        appVersion: str(row, "app_version"),
        updated: date(row.updated),
        description: "",
        values: {},
        notes: "",
      };
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

// Chart versions are SemVer 2 (helm refuses to package or load anything else):
// MAJOR.MINOR.PATCH with optional -prerelease and +build parts.
const SEMVER = /^v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

/**
 * splitChart splits helm's "name-version" chart string ("podinfo-6.13.0",
 * "my-app-2-1.0.0-rc.1") at the first hyphen after which a full SemVer version follows;
 * chart names may hold hyphens and digits, versions may hold hyphens, so no simpler rule
 * works. Without a match the whole string is the name.
 */
export function splitChart(chart: string): { name: string; version: string } {
  for (let i = chart.indexOf("-"); i > 0; i = chart.indexOf("-", i + 1)) {
    const version = chart.slice(i + 1);
    if (SEMVER.test(version)) return { name: chart.slice(0, i), version };
  }
  return { name: chart, version: "" };
}

function rows(stdout: string): ReturnType<typeof asObject>[] {
  const doc = parseJsonOutput(stdout);
  // An empty history or list is "[]"; helm never prints null here, but be lenient.
  if (doc === null) return [];
  if (!Array.isArray(doc)) {
    throw new PaasError("internal", "helm printed unexpected output", { cause: new Error("expected a JSON array") });
  }
  return doc.map(asObject);
}
