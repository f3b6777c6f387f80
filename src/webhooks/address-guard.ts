import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { isIP, type LookupFunction } from "node:net";
import { forbiddenHost, ipv6Words } from "../catalog/url.ts";

/**
 * The SSRF guard of webhook endpoints: link-local and cloud metadata addresses (the chart
 * catalogue's rules) are always refused; loopback and unspecified addresses unless allowed
 * (tests). It is applied to the configured host and again to every address DNS returns when
 * connecting, so a name that resolves (or is rebound) to such an address is refused too.
 */
export function addressProblem(host: string, allowLoopback: boolean): string | undefined {
  const h = host.toLowerCase().replace(/\.$/, "");
  const forbidden = forbiddenHost(h);
  if (forbidden) return forbidden;
  if (!allowLoopback && isLoopback(h)) return "a loopback address";
  if (isUnspecified(h)) return "the unspecified address";
  return undefined;
}

function isLoopback(h: string): boolean {
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)) return true;
  if (h.startsWith("[")) {
    const w = ipv6Words(h.slice(1, -1));
    if (!w) return false;
    if (w.slice(0, 7).every((x) => x === 0) && w[7] === 1) return true;
    // ::ffff:127.x.y.z
    if (w.slice(0, 5).every((x) => x === 0) && w[5] === 0xffff && w[6]! >> 8 === 127) return true;
  }
  return false;
}

function isUnspecified(h: string): boolean {
  if (h === "0.0.0.0" || /^0\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)) return true;
  if (h.startsWith("[")) {
    const w = ipv6Words(h.slice(1, -1));
    return w !== undefined && w.every((x) => x === 0);
  }
  return false;
}

/** AddressRefused is what guardedLookup fails with; its code is the delivery's error class. */
export class AddressRefused extends Error {
  readonly code = "ADDRESS_REFUSED";
}

/** guardedLookup is a net lookup that refuses every resolved address addressProblem refuses. */
export function guardedLookup(allowLoopback: boolean): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, "", 0);
      const list = addresses as LookupAddress[];
      for (const a of list) {
        const host = isIP(a.address) === 6 ? `[${a.address}]` : a.address;
        const problem = addressProblem(host, allowLoopback);
        if (problem) return callback(new AddressRefused(`the endpoint resolves to ${problem}`), "", 0);
      }
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, list);
      const first = list[0];
      if (!first) return callback(Object.assign(new Error("no address"), { code: "ENOTFOUND" }), "", 0);
      callback(null, first.address, first.family);
    });
  };
}
