import type { Readable } from "node:stream";

/** BodyLimits bound what a request body may cost. */
export interface BodyLimits {
  /** Largest body accepted (MAX_BODY_BYTES). */
  maxBytes: number;
  /**
   * A body that is not read to its end (over the limit, or refused before it was read) is still
   * read, and discarded, up to this many bytes in all, so that clients that read the answer only
   * after sending everything (Python's http.client, urllib, requests) get the answer instead of a
   * broken pipe. Beyond it, or after `drainMs`, the connection is closed after the answer.
   */
  drainBytes: number;
  drainMs: number;
}

/** BodyRequest is a request body stream with its headers (HTTP/1.1 and HTTP/2 requests). */
export type BodyRequest = Readable & { headers: Record<string, string | string[] | undefined> };

/** declaredLength is the request's Content-Length, or NaN. */
export function declaredLength(req: BodyRequest): number {
  const v = req.headers["content-length"];
  return typeof v === "string" && /^\d+$/.test(v) ? Number(v) : Number.NaN;
}

/** bodyLimits are the limits for MAX_BODY_BYTES: drain up to 16 × the limit (at least 16 MiB) for 30 s. */
export function bodyLimits(maxBytes: number, drainMs = 30_000): BodyLimits {
  return { maxBytes, drainBytes: Math.max(16 * maxBytes, 16 * 1024 * 1024), drainMs };
}

/**
 * How draining ended: `ended` the whole body was read (the connection may be kept), `cut` a
 * bound was hit (close the connection after the answer), `gone` the caller went away.
 */
export type Drained = "ended" | "cut" | "gone";

/**
 * drainBody reads and discards the rest of a request body, up to `drainBytes` in all (`read`:
 * bytes of it already read) and `drainMs`; a body whose Content-Length is over `drainBytes` is
 * not read at all. It never destroys the request: that would reset the connection before the
 * answer is written.
 */
export function drainBody(
  req: BodyRequest,
  limits: Pick<BodyLimits, "drainBytes" | "drainMs">,
  read = 0,
): Promise<Drained> {
  if (req.readableEnded) return Promise.resolve("ended");
  if (req.destroyed) return Promise.resolve("gone");
  if (read > limits.drainBytes || declaredLength(req) > limits.drainBytes) return Promise.resolve("cut");
  return new Promise((resolve) => {
    let size = read;
    const finish = (how: Drained) => {
      clearTimeout(timer);
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onGone);
      req.off("close", onGone);
      // Stop reading what is left; the connection is closed after the answer.
      if (how === "cut") req.pause();
      resolve(how);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limits.drainBytes) finish("cut");
    };
    const onEnd = () => finish("ended");
    const onGone = () => finish("gone");
    const timer = setTimeout(() => finish("cut"), limits.drainMs);
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onGone);
    req.on("close", onGone);
  });
}
