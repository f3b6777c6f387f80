import { randomBytes } from "node:crypto";

// Audit ids sort by time: 12 hex digits of the millisecond timestamp, then 16 hex digits of
// randomness. Within one millisecond the random part of the previous id is incremented
// (as ULID's monotonic mode does), so the ids one process makes also sort in creation order.
let lastMs = -1;
let lastRandom = 0n;
const RANDOM_MAX = (1n << 64n) - 1n;

/** newAuditId returns a unique id that sorts (as a string) by creation time: 28 lowercase hex digits. */
export function newAuditId(now: number = Date.now()): string {
  let ms = Math.max(0, Math.floor(now));
  if (ms <= lastMs) {
    ms = lastMs;
    if (lastRandom === RANDOM_MAX) {
      // 2^64 ids in one millisecond cannot happen; this only keeps the order if it did.
      ms = lastMs + 1;
      lastRandom = randomBytes(8).readBigUInt64BE() >> 1n;
    } else {
      lastRandom += 1n;
    }
  } else {
    // The top bit stays clear so that increments within the millisecond have room.
    lastRandom = randomBytes(8).readBigUInt64BE() >> 1n;
  }
  lastMs = ms;
  return ms.toString(16).padStart(12, "0") + lastRandom.toString(16).padStart(16, "0");
}

// Crockford's base32 in lowercase (no i, l, o, u): only [a-z0-9], safe in URLs and label values.
const BASE32 = "0123456789abcdefghjkmnpqrstvwxyz";

/**
 * newOperationId returns a ULID in lowercase: 26 characters of [0-9a-z] (10 for the
 * millisecond timestamp, 16 random), usable in URLs and as a Kubernetes label value.
 */
export function newOperationId(now: number = Date.now()): string {
  let ms = Math.max(0, Math.floor(now));
  let time = "";
  for (let i = 0; i < 10; i++) {
    time = BASE32[ms % 32] + time;
    ms = Math.floor(ms / 32);
  }
  const bytes = randomBytes(16);
  let random = "";
  for (let i = 0; i < 16; i++) random += BASE32[bytes[i]! & 31];
  return time + random;
}
