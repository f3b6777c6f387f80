import { createHash, timingSafeEqual } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { callerKey } from "../context.ts";

/** Services reachable without a key: probes and tooling must work unauthenticated. */
export const PUBLIC_SERVICES = new Set(["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"]);

interface StoredKey {
  id: string;
  digest: Buffer;
}

/** ApiKeys checks presented keys against configured ones in constant time. */
export class ApiKeys {
  private readonly keys: StoredKey[];

  constructor(keys: string[]) {
    // Keep only digests: equal-length buffers make timingSafeEqual applicable whatever the input length.
    this.keys = keys.map((key) => {
      const digest = sha256(key);
      return { id: `key-${digest.subarray(0, 4).toString("hex")}`, digest };
    });
  }

  /** identify returns the id of the matching key, or undefined; every stored key is compared. */
  identify(presented: string): string | undefined {
    const digest = sha256(presented);
    let match: string | undefined;
    for (const key of this.keys) {
      if (timingSafeEqual(key.digest, digest)) match = key.id;
    }
    return match;
  }

  get size(): number {
    return this.keys.length;
  }
}

function sha256(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

/**
 * apiKeyInterceptor requires a valid `x-api-key` header on every call except the public
 * services. With no keys configured (development only) every caller is "anonymous".
 */
export function apiKeyInterceptor(keys: ApiKeys): Interceptor {
  return (next) => async (req) => {
    if (PUBLIC_SERVICES.has(req.service.typeName)) return next(req);
    if (keys.size === 0) {
      req.contextValues.set(callerKey, { id: "anonymous" });
      return next(req);
    }
    const presented = req.header.get("x-api-key");
    if (!presented) throw new ConnectError("missing API key (x-api-key header)", Code.Unauthenticated);
    const id = keys.identify(presented);
    if (id === undefined) throw new ConnectError("invalid API key", Code.Unauthenticated);
    req.contextValues.set(callerKey, { id });
    return next(req);
  };
}
