import { Webhook } from "standardwebhooks";

/**
 * Standard Webhooks 1.0 headers, signed with the `standardwebhooks` package: webhook-id (the
 * delivery's, the same on every attempt), webhook-timestamp (this attempt's, unix seconds),
 * webhook-signature ("v1,<base64 HMAC-SHA256 of id.timestamp.body>", one per secret,
 * space-separated, so that a receiver that knows any one of them verifies the message).
 */
export type SignedHeaders = {
  "webhook-id": string;
  "webhook-timestamp": string;
  "webhook-signature": string;
};

export function signHeaders(id: string, at: Date, body: string, secrets: readonly string[]): SignedHeaders {
  if (secrets.length === 0) throw new Error("no secret to sign with");
  const signatures = secrets.map((s) => new Webhook(s).sign(id, at, body));
  return {
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": signatures.join(" "),
  };
}
