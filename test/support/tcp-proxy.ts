import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dump, load } from "js-yaml";

/**
 * TcpProxy is a loopback TCP proxy in front of one upstream (e.g. the testbed's API
 * server). It forwards bytes untouched, so TLS runs end to end between the client and
 * the upstream. cut() simulates an outage: every open connection is reset and new ones
 * are reset as soon as they are accepted; the port stays bound, so restore() brings the
 * same address back.
 */
export interface TcpProxy {
  readonly port: number;
  /** "127.0.0.1:<port>" */
  readonly address: string;
  /** Connections accepted and forwarded since the start. */
  readonly accepted: number;
  /** Connections reset because the proxy was cut (open ones and refused new ones). */
  readonly refused: number;
  readonly isCut: boolean;
  /** Resets every open connection and every new one until restore(). */
  cut(): void;
  /** Forwards again. */
  restore(): void;
  /** Closes the port and every connection. */
  close(): Promise<void>;
}

/** startTcpProxy listens on a free port of 127.0.0.1 and forwards to `target` ("host:port" or a URL). */
export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const { host, port: targetPort } = parseTarget(target);
  const open = new Set<net.Socket>();
  let cut = false;
  let accepted = 0;
  let refused = 0;

  const kill = (s: net.Socket) => {
    // RST instead of FIN: the client sees ECONNRESET at once, as when a link or a peer dies.
    if (!s.destroyed) s.resetAndDestroy();
  };

  const server = net.createServer((client) => {
    client.on("error", () => undefined);
    if (cut) {
      refused++;
      kill(client);
      return;
    }
    accepted++;
    const upstream = net.connect({ host, port: targetPort });
    upstream.on("error", () => kill(client));
    client.on("error", () => kill(upstream));
    for (const s of [client, upstream]) {
      open.add(s);
      s.once("close", () => open.delete(s));
    }
    client.once("close", () => upstream.destroy());
    upstream.once("close", () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;

  return {
    port,
    address: `127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    get refused() {
      return refused;
    },
    get isCut() {
      return cut;
    },
    cut() {
      cut = true;
      for (const s of [...open]) {
        refused++;
        kill(s);
      }
    },
    restore() {
      cut = false;
    },
    async close() {
      cut = true;
      for (const s of [...open]) kill(s);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function parseTarget(target: string): { host: string; port: number } {
  const url = new URL(target.includes("://") ? target : `tcp://${target}`);
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  return { host: url.hostname.replace(/^\[|\]$/g, ""), port };
}

/**
 * writeKubeconfigVia copies a kubeconfig with its current cluster's server pointed at
 * `address` ("127.0.0.1:<port>"), keeping the scheme, the CA and the client credentials:
 * TLS still verifies the upstream's certificate (it must carry an IP SAN for the address's
 * host). Returns the copy's path (a fresh temporary directory).
 */
export function writeKubeconfigVia(kubeconfigPath: string, address: string): string {
  const doc = load(readFileSync(kubeconfigPath, "utf8")) as {
    "current-context"?: string;
    contexts?: Array<{ name: string; context: { cluster: string } }>;
    clusters?: Array<{ name: string; cluster: { server: string } }>;
  };
  const context = doc.contexts?.find((c) => c.name === doc["current-context"]);
  const cluster = doc.clusters?.find((c) => c.name === context?.context.cluster);
  if (!cluster) throw new Error(`${kubeconfigPath}: no cluster for the current context`);
  const server = new URL(cluster.cluster.server);
  server.host = address;
  cluster.cluster.server = server.toString().replace(/\/$/, "");
  const path = join(mkdtempSync(join(tmpdir(), "paas-kubeconfig-")), "kubeconfig");
  writeFileSync(path, dump(doc), { mode: 0o600 });
  return path;
}
