import { randomBytes } from "node:crypto";
import type { OperationRecord, StepRecord } from "../domain/operation.ts";
import type { NewDelivery, OutboxPlanner, WebhookEventType } from "../domain/webhook.ts";
import { matchesNamespace, type Subscription } from "./subscriptions.ts";

/** MAX_PAYLOAD_BYTES: bodies stay below it (step details and the error message are cut). */
export const MAX_PAYLOAD_BYTES = 20 * 1024;

/** newWebhookId is a webhook-id: msg_ and 24 random bytes in base64url. */
export function newWebhookId(): string {
  return `msg_${randomBytes(18).toString("base64url")}`;
}

/** eventTypeOf names the event an operation's end is. */
export function eventTypeOf(op: OperationRecord): WebhookEventType | undefined {
  switch (op.state) {
    case "succeeded":
      return "operation.succeeded";
    case "failed":
      return "operation.failed";
    case "cancelled":
      return "operation.cancelled";
    default:
      return undefined;
  }
}

/**
 * eventPayload is the body {type, timestamp, data}: data is the operation without its request,
 * params (values digests), response or progress — id, kind, method, target, state, steps,
 * error, caller and times only.
 */
export function eventPayload(type: WebhookEventType, op: OperationRecord, at: Date, step?: StepRecord): string {
  const iso = (d: Date | undefined) => d?.toISOString();
  const body = (detailMax: number, messageMax: number) => ({
    type,
    timestamp: at.toISOString(),
    data: {
      id: op.id,
      kind: op.kind,
      method: op.method,
      target: { namespace: op.namespace, release: op.release },
      state: op.state,
      caller: op.caller,
      created_at: iso(op.createdAt),
      started_at: iso(op.startedAt),
      finished_at: iso(op.finishedAt),
      steps: op.steps.map((s) => ({
        name: s.name,
        order: s.order,
        state: s.state,
        detail: s.detail.slice(0, detailMax),
        started_at: iso(s.startedAt),
        finished_at: iso(s.finishedAt),
      })),
      ...(op.error
        ? { error: { code: op.error.code, reason: op.error.reason, message: op.error.message.slice(0, messageMax) } }
        : {}),
      // operation.step: the step that started or ended.
      ...(step
        ? {
            step: {
              name: step.name,
              order: step.order,
              state: step.state,
              detail: step.detail.slice(0, detailMax),
              started_at: iso(step.startedAt),
              finished_at: iso(step.finishedAt),
            },
          }
        : {}),
    },
  });
  let text = JSON.stringify(body(1000, 4000));
  if (Buffer.byteLength(text) >= MAX_PAYLOAD_BYTES) text = JSON.stringify(body(100, 1000));
  // Still too large (hundreds of steps): keep the last steps that fit, and say so.
  for (let keep = op.steps.length; Buffer.byteLength(text) >= MAX_PAYLOAD_BYTES; keep = Math.floor(keep / 2)) {
    const cut = body(100, 1000);
    cut.data.steps = cut.data.steps.slice(op.steps.length - keep);
    text = JSON.stringify({ ...cut, truncated: true });
    if (keep === 0) break;
  }
  return text;
}

/** wants: the subscription takes this event type for this namespace, and its endpoint is not disabled. */
export function wants(
  sub: Subscription,
  type: WebhookEventType,
  namespace: string,
  disabled: ReadonlySet<string>,
): boolean {
  return (
    sub.events.includes(type) && matchesNamespace(sub.namespaces, namespace) && !disabled.has(`${sub.id} ${sub.url}`)
  );
}

/** deliveriesFor: one delivery (its own webhook-id) per subscription that wants the event. */
export function deliveriesFor(
  subs: readonly Subscription[],
  type: WebhookEventType,
  op: OperationRecord,
  at: Date,
  disabled: ReadonlySet<string>,
  step?: StepRecord,
): NewDelivery[] {
  const matching = subs.filter((s) => wants(s, type, op.namespace, disabled));
  if (matching.length === 0) return [];
  const payload = eventPayload(type, op, at, step);
  return matching.map((s) => ({
    id: newWebhookId(),
    subscriptionId: s.id,
    eventType: type,
    operationId: op.id,
    namespace: op.namespace,
    payload,
    createdAt: at,
  }));
}

/** outboxPlanner is what the store runs when an operation ends (in the same transaction). */
export function outboxPlanner(subs: () => readonly Subscription[], disabled: () => ReadonlySet<string>): OutboxPlanner {
  return (op) => {
    const type = eventTypeOf(op);
    if (!type) return [];
    return deliveriesFor(subs(), type, op, op.finishedAt ?? new Date(), disabled());
  };
}

/**
 * stepListener writes operation.step deliveries (opt-in per subscription) when a step starts
 * or ends. They are written on their own, after the step's progress write, not in one
 * transaction with it: a crash between the two loses that step event (the end events are
 * transactional).
 */
export function stepListener(
  subs: () => readonly Subscription[],
  disabled: () => ReadonlySet<string>,
  enqueue: (rows: NewDelivery[]) => Promise<void>,
  onError: (err: unknown) => void,
): (op: OperationRecord, step: StepRecord) => void {
  return (op, step) => {
    const rows = deliveriesFor(subs(), "operation.step", op, new Date(), disabled(), step);
    if (rows.length > 0) enqueue(rows).catch(onError);
  };
}
