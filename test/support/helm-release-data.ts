import { gunzipSync, gzipSync } from "node:zlib";

// Helm's JSON as Go writes it: HTML characters escaped, a big integer in the values that a
// float64 round trip would change, keys in Go's order.
export function helmJson(version: number, status: string, info: Record<string, string> = {}): string {
  return (
    `{"name":"web","info":{"first_deployed":"2026-01-10T08:00:00.123456789Z","last_deployed":"2026-01-12T09:30:00.5Z","deleted":"",` +
    `"description":"Preparing upgrade","status":"${status}","notes":"\\u003cb\\u003ehi\\u003c/b\\u003e"${Object.entries(
      info,
    )
      .map(([k, v]) => `,"${k}":"${v}"`)
      .join(
        "",
      )}},"chart":{"metadata":{"name":"podinfo","version":"6.14.1"},"templates":[{"name":"t.yaml","data":"YQ=="}]},` +
    `"config":{"replicas":12345678901234567890,"ratio":1.50,"tiny":1e-7},"manifest":"---\\n","version":${version},"namespace":"paas-ws-acme"}`
  );
}

/** helmData encodes like Helm: gzip, base64, and base64 again in the Secret's JSON; helmText decodes. */
export const helmData = (text: string) =>
  Buffer.from(gzipSync(Buffer.from(text), { level: 9 }).toString("base64")).toString("base64");
export const helmText = (data: string) =>
  gunzipSync(Buffer.from(Buffer.from(data, "base64").toString("latin1"), "base64")).toString("utf8");
