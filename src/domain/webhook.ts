import type { OperationRecord } from "./operation.ts";

// Webhooks on operation events: the outbox rows the audit store keeps (written in the same
// transaction as the operation's end) and the attempts made to deliver them.

export const WEBHOOK_EVENT_TYPES = [
  "operation.succeeded",
  "operation.failed",
  "operation.cancelled",
  "operation.step",
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** pending: to be (re)tried; delivered: a 2xx answer; dead: the schedule ran out; disabled: the endpoint answered 410 (or its subscription is gone). */
export const DELIVERY_STATES = ["pending", "delivered", "dead", "disabled"] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];

/** NewDelivery is one event for one subscription, as the outbox receives it. */
export interface NewDelivery {
  /** The webhook-id header: the same for every attempt of this delivery. */
  id: string;
  subscriptionId: string;
  eventType: WebhookEventType;
  operationId: string;
  namespace: string;
  /** The exact body sent (JSON text, no values, no secrets). */
  payload: string;
  createdAt: Date;
}

/** DeliveryRecord is a delivery as stored. */
export interface DeliveryRecord extends NewDelivery {
  state: DeliveryState;
  /** Attempts made so far (every one is in the attempts table). */
  attempts: number;
  /** The attempt count when the current schedule started (RedeliverWebhook starts a new one). */
  scheduleFrom: number;
  nextAttemptAt: Date;
  updatedAt: Date;
  /** HTTP status of the last attempt, 0 when none or no answer. */
  lastStatus: number;
  /** Error class of the last attempt ("" on success or before the first). */
  lastError: string;
}

/** DeliveryAttempt is one HTTP request made for a delivery (never the body nor the secrets). */
export interface DeliveryAttempt {
  deliveryId: string;
  /** 1, 2, … */
  attempt: number;
  at: Date;
  /** 0 when no answer came. */
  statusCode: number;
  durationMs: number;
  /** "" on a 2xx; otherwise e.g. "http_500", "timeout", "connection_refused", "address_refused". */
  errorClass: string;
  replica: string;
}

/** What a delivery becomes after an attempt. */
export interface AttemptResult {
  state: DeliveryState;
  /** When state is pending: the next attempt's time. */
  nextAttemptAt?: Date;
}

export interface DeliveryQuery {
  subscriptionId?: string;
  operationId?: string;
  state?: DeliveryState;
  /** 1..1000 */
  pageSize: number;
  pageToken?: string;
}

export interface DeliveryPage {
  /** Newest first. */
  deliveries: DeliveryRecord[];
  nextPageToken: string;
}

/**
 * OutboxPlanner turns an operation that just ended (as written) into the deliveries its
 * subscriptions get; it runs inside the store's transaction, so it must be synchronous and
 * must not throw for an ordinary operation.
 */
export type OutboxPlanner = (op: OperationRecord) => NewDelivery[];

/**
 * StepListener is told when a step of an operation starts or ends (the operation as it is
 * then, and the step); it must not throw. The webhooks' operation.step events come from it.
 */
export type StepListener = (op: OperationRecord, step: OperationRecord["steps"][number]) => void;

/**
 * WebhookStore is the durable outbox, shared by every replica (the audit store implements
 * it). Deliveries are claimed by one replica at a time (row claims that expire), so an
 * attempt is made by one sender, and survive restarts.
 */
export interface WebhookStore {
  /** The planner finishOperation runs in its transaction; undefined: no webhooks. */
  setOutboxPlanner(planner: OutboxPlanner | undefined): void;
  /** Writes deliveries outside an operation's end (operation.step events), due now. */
  enqueueDeliveries(rows: NewDelivery[]): Promise<void>;
  /** Pending deliveries due now, not claimed by a live claim, become `replica`'s for claimMs; oldest due first. */
  claimDeliveries(replica: string, claimMs: number, limit: number): Promise<DeliveryRecord[]>;
  /**
   * Records an attempt and the delivery's new state in one transaction, if `replica` still
   * holds the claim; false otherwise (nothing written).
   */
  recordAttempt(attempt: DeliveryAttempt, result: AttemptResult): Promise<boolean>;
  /** Gives a claimed delivery back untried (the sender is stopping), due at `at`. */
  releaseClaim(id: string, replica: string, at: Date): Promise<void>;
  getDelivery(id: string): Promise<DeliveryRecord | undefined>;
  listDeliveries(query: DeliveryQuery): Promise<DeliveryPage>;
  /** Every attempt of a delivery, in order. */
  listAttempts(deliveryId: string): Promise<DeliveryAttempt[]>;
  /** A delivered or dead delivery becomes pending again, due now, with a new schedule; undefined when not found; false when pending or disabled. */
  redeliver(id: string): Promise<DeliveryRecord | undefined | false>;
  /** Marks the endpoint (subscription id + URL) disabled; its pending deliveries become disabled. */
  disableEndpoint(subscriptionId: string, url: string, at: Date): Promise<void>;
  /** Disabled endpoints as "id url" strings. */
  disabledEndpoints(): Promise<Set<string>>;
}
