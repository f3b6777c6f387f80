import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  WebhookAttemptSchema,
  WebhookDeliverySchema,
  WebhookDeliveryState,
  type WebhookDelivery,
} from "../../gen/paas/v1/webhook_pb.js";
import type { DeliveryAttempt, DeliveryRecord, DeliveryState } from "../domain/webhook.ts";

const STATES: Record<DeliveryState, WebhookDeliveryState> = {
  pending: WebhookDeliveryState.PENDING,
  delivered: WebhookDeliveryState.DELIVERED,
  dead: WebhookDeliveryState.DEAD,
  disabled: WebhookDeliveryState.DISABLED,
};

/** deliveryStateOf maps the proto enum to the store's state; UNSPECIFIED: undefined (every state). */
export function deliveryStateOf(s: WebhookDeliveryState): DeliveryState | undefined {
  return (Object.entries(STATES) as Array<[DeliveryState, WebhookDeliveryState]>).find(([, v]) => v === s)?.[0];
}

/** toWebhookDelivery: the delivery and its attempts (never its payload). */
export function toWebhookDelivery(d: DeliveryRecord, attempts: DeliveryAttempt[]): WebhookDelivery {
  return create(WebhookDeliverySchema, {
    id: d.id,
    subscriptionId: d.subscriptionId,
    eventType: d.eventType,
    operationId: d.operationId,
    namespace: d.namespace,
    state: STATES[d.state],
    attempts: d.attempts,
    createTime: timestampFromDate(d.createdAt),
    ...(d.state === "pending" ? { nextAttemptTime: timestampFromDate(d.nextAttemptAt) } : {}),
    lastStatusCode: d.lastStatus,
    lastErrorClass: d.lastError,
    attemptLog: attempts.map((a) =>
      create(WebhookAttemptSchema, {
        attempt: a.attempt,
        time: timestampFromDate(a.at),
        statusCode: a.statusCode,
        durationMs: BigInt(a.durationMs),
        errorClass: a.errorClass,
        replica: a.replica,
      }),
    ),
  });
}
