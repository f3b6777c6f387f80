import { PaasError } from "../errors.ts";

/** PagePosition is where the next page starts: after the record with this time and id. */
export interface PagePosition {
  timeMs: number;
  id: string;
}

const TOKEN_VERSION = 1;
const MAX_TOKEN_LENGTH = 512;

/** encodePageToken makes the opaque nextPageToken for a position (base64url of a small JSON). */
export function encodePageToken(pos: PagePosition): string {
  return Buffer.from(JSON.stringify({ v: TOKEN_VERSION, t: pos.timeMs, i: pos.id }), "utf8").toString("base64url");
}

/** decodePageToken reads a token made by encodePageToken; anything else is PaasError("invalid_argument"). */
export function decodePageToken(token: string): PagePosition {
  const bad = () =>
    new PaasError("invalid_argument", "page_token is malformed; pass the next_page_token of a previous page unchanged");
  if (token.length > MAX_TOKEN_LENGTH || !/^[A-Za-z0-9_-]+$/.test(token)) throw bad();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw bad();
  }
  if (typeof parsed !== "object" || parsed === null) throw bad();
  const { v, t, i } = parsed as Record<string, unknown>;
  if (v !== TOKEN_VERSION) throw bad();
  if (typeof t !== "number" || !Number.isSafeInteger(t) || t < 0) throw bad();
  if (typeof i !== "string" || i === "" || i.length > 200) throw bad();
  return { timeMs: t, id: i };
}
