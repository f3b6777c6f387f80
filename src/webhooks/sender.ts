import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Logger } from "pino";
import type { AttemptResult, DeliveryRecord, WebhookStore } from "../domain/webhook.ts";
import { addressProblem, guardedLookup } from "./address-guard.ts";
import { signHeaders } from "./signing.ts";
import { nextDelay, parseRetryAfter } from "./schedule.ts";
import type { SubscriptionRegistry } from "./subscriptions.ts";

export interface WebhookSenderOptions {
  store: WebhookStore;
  subscriptions: SubscriptionRegistry;
  replica: string;
  logger: Logger;
  /** Delays before attempt 1, 2, …; the delivery is dead after the last. */
  scheduleMs: readonly number[];
  /** How often due deliveries are looked for, ms. */
  pollMs: number;
  /** One request's limit, ms (15 s). */
  timeoutMs: number;
  allowLoopback: boolean;
  /** Deliveries claimed per round (and sent at once). */
  batch?: number;
}

/** What one HTTP attempt came to. */
interface AttemptOutcome {
  status: number;
  errorClass: string;
  retryAfterMs?: number;
}

const USER_AGENT = "paas-operator-webhooks/1";

/**
 * WebhookSender delivers the outbox: every pollMs it claims due deliveries (a claim outlives
 * the request timeout, so one sender at a time makes an attempt), signs and POSTs each, and
 * records the attempt with the delivery's next state in one transaction. Only a 2xx counts;
 * 410 disables the endpoint; Retry-After is a lower bound for the next delay; after the last
 * attempt of the schedule the delivery is dead.
 */
export class WebhookSender {
  private readonly o: WebhookSenderOptions;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** Disabled endpoints ("id url"), refreshed every round; the outbox planner reads it. */
  disabled: ReadonlySet<string> = new Set();

  constructor(opts: WebhookSenderOptions) {
    this.o = opts;
  }

  start(): void {
    if (this.timer || this.stopped) return;
    const loop = () => {
      if (this.stopped) return;
      this.running = this.round()
        .catch((err: unknown) =>
          this.o.logger.warn({ err: (err as Error).message }, "webhook sender: a round failed; retrying"),
        )
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) this.timer = setTimeout(loop, this.o.pollMs);
        });
    };
    this.timer = setTimeout(loop, 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** round claims and sends until nothing is due (at most 20 batches). */
  async round(): Promise<void> {
    this.disabled = await this.o.store.disabledEndpoints();
    const batch = this.o.batch ?? 8;
    for (let i = 0; i < 20 && !this.stopped; i++) {
      const claimed = await this.o.store.claimDeliveries(this.o.replica, this.o.timeoutMs * 4, batch);
      await Promise.all(claimed.map((d) => this.deliver(d)));
      if (claimed.length < batch) return;
    }
  }

  private async deliver(d: DeliveryRecord): Promise<void> {
    const sub = this.o.subscriptions.get(d.subscriptionId);
    const attempt = d.attempts + 1;
    const base = { deliveryId: d.id, attempt, replica: this.o.replica };
    if (!sub) {
      // Removed from WEBHOOKS_FILE: nowhere to send it any more.
      await this.o.store.recordAttempt(
        { ...base, at: new Date(), statusCode: 0, durationMs: 0, errorClass: "subscription_removed" },
        { state: "disabled" },
      );
      return;
    }
    if (this.disabled.has(`${sub.id} ${sub.url}`)) {
      await this.o.store.recordAttempt(
        { ...base, at: new Date(), statusCode: 0, durationMs: 0, errorClass: "endpoint_disabled" },
        { state: "disabled" },
      );
      return;
    }
    const at = new Date();
    const started = performance.now();
    const outcome = await this.post(sub.url, signHeaders(d.id, at, d.payload, sub.secrets), d.payload);
    const durationMs = Math.round(performance.now() - started);
    let result: AttemptResult;
    if (outcome.status >= 200 && outcome.status < 300) {
      result = { state: "delivered" };
    } else if (outcome.status === 410) {
      result = { state: "disabled" };
    } else {
      const delay = nextDelay(this.o.scheduleMs, attempt - d.scheduleFrom, outcome.retryAfterMs);
      result =
        delay === undefined ? { state: "dead" } : { state: "pending", nextAttemptAt: new Date(Date.now() + delay) };
    }
    const written = await this.o.store.recordAttempt(
      { ...base, at, statusCode: outcome.status, durationMs, errorClass: outcome.errorClass },
      result,
    );
    if (outcome.status === 410) {
      await this.o.store.disableEndpoint(sub.id, sub.url, new Date());
      this.disabled = new Set([...this.disabled, `${sub.id} ${sub.url}`]);
    }
    const log = {
      delivery: d.id,
      subscription: sub.id,
      operation: d.operationId,
      attempt,
      status: outcome.status,
      durationMs,
    };
    if (!written) this.o.logger.warn(log, "webhook attempt not recorded: the claim was lost");
    else if (result.state === "delivered") this.o.logger.info(log, "webhook delivered");
    else
      this.o.logger.warn(
        { ...log, error: outcome.errorClass, state: result.state, next: result.nextAttemptAt?.toISOString() },
        result.state === "pending" ? "webhook attempt failed; retrying" : `webhook delivery ${result.state}`,
      );
  }

  /** post sends one request; the outcome names no secret and none of the body. */
  private post(url: string, headers: Record<string, string>, body: string): Promise<AttemptOutcome> {
    const u = new URL(url);
    const problem = addressProblem(u.hostname, this.o.allowLoopback);
    if (problem) return Promise.resolve({ status: 0, errorClass: "address_refused" });
    const send = u.protocol === "https:" ? httpsRequest : httpRequest;
    return new Promise((resolve) => {
      let settled = false;
      const done = (o: AttemptOutcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(o);
      };
      const req = send(
        u,
        {
          method: "POST",
          headers: {
            ...headers,
            "content-type": "application/json",
            "content-length": String(Buffer.byteLength(body)),
            "user-agent": USER_AGENT,
          },
          lookup: guardedLookup(this.o.allowLoopback),
          agent: false,
        },
        (res: IncomingMessage) => {
          const status = res.statusCode ?? 0;
          const retryAfterMs = parseRetryAfter(res.headers["retry-after"]);
          // The answer's body is not kept: read and dropped (up to the timeout).
          res.resume();
          res.on("end", () =>
            done({
              status,
              errorClass: status >= 200 && status < 300 ? "" : `http_${status}`,
              ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
            }),
          );
          res.on("error", () => done({ status, errorClass: "connection_reset" }));
        },
      );
      const timer = setTimeout(() => {
        done({ status: 0, errorClass: "timeout" });
        req.destroy();
      }, this.o.timeoutMs);
      req.on("error", (err: NodeJS.ErrnoException) => done({ status: 0, errorClass: errorClassOf(err) }));
      req.end(body);
    });
  }
}

function errorClassOf(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case "ADDRESS_REFUSED":
      return "address_refused";
    case "ECONNREFUSED":
      return "connection_refused";
    case "ECONNRESET":
    case "EPIPE":
      return "connection_reset";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "dns_error";
    case "ETIMEDOUT":
      return "timeout";
    default:
      return err.code?.startsWith("ERR_TLS") || err.code?.includes("CERT") ? "tls_error" : "network_error";
  }
}
