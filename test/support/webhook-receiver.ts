import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** ReceivedWebhook is one request a receiver got. */
export interface ReceivedWebhook {
  at: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The status the receiver answered. */
  status: number;
}

/** An answer: a status and optional headers (Retry-After). */
export interface Answer {
  status: number;
  headers?: Record<string, string>;
}

/**
 * WebhookReceiver is a real HTTP server on 127.0.0.1 that records every request; `answers`
 * are used in order (then 204). close() and listen() on the same port make it "down" and "up".
 */
export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = [];
  answers: Answer[] = [];
  port = 0;
  private server: Server | undefined;

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  async listen(port = this.port): Promise<this> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const answer = this.answers.shift() ?? { status: 204 };
        this.received.push({
          at: Date.now(),
          headers: req.headers,
          body: Buffer.concat(chunks).toString("utf8"),
          status: answer.status,
        });
        res.writeHead(answer.status, answer.headers ?? {});
        res.end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
