import { PaasError } from "../errors.ts";
import {
  DELIVERY_STATES,
  type DeliveryPage,
  type DeliveryQuery,
  type DeliveryRecord,
  type DeliveryState,
  type WebhookEventType,
} from "../domain/webhook.ts";
import { MAX_PAGE_SIZE } from "./audit-rows.ts";
import { decodePageToken, encodePageToken, type PagePosition } from "./page-token.ts";

// What the SQLite and PostgreSQL stores share for the webhook outbox: reading a row,
// checking a query and cutting a page. Times are decoded by each store.

export interface CheckedDeliveryQuery extends DeliveryQuery {
  after: PagePosition | undefined;
}

export function checkDeliveryQuery(query: DeliveryQuery): CheckedDeliveryQuery {
  if (!Number.isInteger(query.pageSize) || query.pageSize < 1 || query.pageSize > MAX_PAGE_SIZE) {
    throw new PaasError("invalid_argument", `page_size must be between 1 and ${MAX_PAGE_SIZE}`);
  }
  if (query.state !== undefined && !DELIVERY_STATES.includes(query.state))
    throw new PaasError("invalid_argument", `state "${String(query.state)}" is unknown`);
  return { ...query, after: query.pageToken ? decodePageToken(query.pageToken) : undefined };
}

export function deliveryFromRow(
  r: Record<string, unknown>,
  times: { createdAt: Date; nextAttemptAt: Date; updatedAt: Date },
): DeliveryRecord {
  return {
    id: String(r.id),
    subscriptionId: String(r.subscription_id),
    eventType: String(r.event_type) as WebhookEventType,
    operationId: String(r.operation_id),
    namespace: String(r.namespace),
    payload: String(r.payload),
    state: String(r.state) as DeliveryState,
    attempts: Number(r.attempts),
    scheduleFrom: Number(r.schedule_from),
    lastStatus: Number(r.last_status),
    lastError: String(r.last_error),
    ...times,
  };
}

export function deliveryPage(rows: DeliveryRecord[], pageSize: number): DeliveryPage {
  const more = rows.length > pageSize;
  const deliveries = more ? rows.slice(0, pageSize) : rows;
  const last = deliveries.at(-1);
  return {
    deliveries,
    nextPageToken: more && last ? encodePageToken({ timeMs: last.createdAt.getTime(), id: last.id }) : "",
  };
}

/** The columns of webhook_deliveries, in insert order. */
export const DELIVERY_COLUMNS = [
  "id",
  "subscription_id",
  "event_type",
  "operation_id",
  "namespace",
  "payload",
  "state",
  "attempts",
  "schedule_from",
  "next_attempt_at",
  "created_at",
  "updated_at",
  "last_status",
  "last_error",
  "claimed_by",
  "claimed_until",
];
