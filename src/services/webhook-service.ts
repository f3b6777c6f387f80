import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { WebhookService } from "../../gen/paas/v1/webhook_pb.js";
import { scopeKey } from "../auth/scopes.ts";
import type { WebhookStore } from "../domain/webhook.ts";
import { PaasError, printable } from "../errors.ts";
import { deliveryStateOf, toWebhookDelivery } from "../mapping/webhook-mapping.ts";
import type { SubscriptionRegistry } from "../webhooks/subscriptions.ts";

const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;

export interface WebhookServiceDeps {
  store: WebhookStore;
  subscriptions: SubscriptionRegistry;
  /** Disabled endpoints ("id url"), as the sender last read them. */
  disabled: () => ReadonlySet<string>;
}

/**
 * createWebhookService implements paas.v1.WebhookService. Subscriptions are server
 * configuration and deliveries span tenants, so every RPC needs an unrestricted API key
 * (PERMISSION_DENIED for a scoped one). Secrets and payloads are never answered.
 */
export function createWebhookService(deps: WebhookServiceDeps): ServiceImpl<typeof WebhookService> {
  const admin = (ctx: HandlerContext) => {
    if (!ctx.values.get(scopeKey).unrestricted)
      throw new PaasError("permission_denied", "webhooks need an unrestricted API key");
  };
  return {
    async listWebhookSubscriptions(_req, ctx) {
      admin(ctx);
      const disabled = deps.disabled();
      return {
        subscriptions: deps.subscriptions.all.map((s) => ({
          id: s.id,
          url: s.url,
          events: s.events,
          namespaces: s.namespaces,
          secretCount: s.secrets.length,
          disabled: disabled.has(`${s.id} ${s.url}`),
        })),
      };
    },
    async listWebhookDeliveries(req, ctx) {
      admin(ctx);
      const pageSize = req.pageSize === 0 ? DEFAULT_PAGE_SIZE : req.pageSize;
      if (pageSize < 1 || pageSize > MAX_PAGE_SIZE)
        throw new PaasError(
          "invalid_argument",
          `page_size must be between 1 and ${MAX_PAGE_SIZE} (0 or absent: ${DEFAULT_PAGE_SIZE})`,
        );
      const state = deliveryStateOf(req.state);
      const page = await deps.store.listDeliveries({
        pageSize,
        ...(req.subscriptionId ? { subscriptionId: req.subscriptionId } : {}),
        ...(req.operationId ? { operationId: req.operationId } : {}),
        ...(state ? { state } : {}),
        ...(req.pageToken ? { pageToken: req.pageToken } : {}),
      });
      const deliveries = await Promise.all(
        page.deliveries.map(async (d) => toWebhookDelivery(d, await deps.store.listAttempts(d.id))),
      );
      return { deliveries, nextPageToken: page.nextPageToken };
    },
    async redeliverWebhook(req, ctx) {
      admin(ctx);
      if (req.id === "") throw new PaasError("invalid_argument", "id is required");
      const d = await deps.store.redeliver(req.id);
      if (d === undefined) throw new PaasError("not_found", `webhook delivery "${printable(req.id)}" not found`);
      if (d === false)
        throw new PaasError(
          "failed_precondition",
          `webhook delivery "${printable(req.id)}" is pending or disabled; only a dead or delivered one is sent again`,
        );
      return { delivery: toWebhookDelivery(d, await deps.store.listAttempts(d.id)) };
    },
  };
}
