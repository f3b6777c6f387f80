import type { StreamRequest, UnaryRequest } from "@connectrpc/connect";

type Req = UnaryRequest | StreamRequest;

/**
 * withCheckedMessages returns the request with `check` applied to its message before the
 * handler sees it: at once for a unary call, as each message is read for a streaming one.
 */
export function withCheckedMessages(req: Req, check: (message: object) => void): Req {
  if (!req.stream) {
    check(req.message);
    return req;
  }
  const messages = req.message;
  async function* checked() {
    for await (const m of messages) {
      check(m);
      yield m;
    }
  }
  return { ...req, message: checked() };
}
