/**
 * The retry schedule: delays before attempt 1, 2, … (Standard Webhooks' recommendation:
 * immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h). After the last one
 * fails, the delivery is dead. Each delay but an immediate one gets ±10 % jitter.
 */
export const DEFAULT_SCHEDULE_MS: readonly number[] = [
  0,
  5_000,
  5 * 60_000,
  30 * 60_000,
  2 * 3600_000,
  5 * 3600_000,
  10 * 3600_000,
  14 * 3600_000,
  20 * 3600_000,
  24 * 3600_000,
];

/** A Retry-After longer than this is cut to it. */
export const MAX_RETRY_AFTER_MS = 24 * 3600_000;

/**
 * nextDelay: after `attemptsMade` attempts of the current schedule have failed, how long until
 * the next one, or undefined when the schedule is used up (dead). retryAfterMs, when the
 * receiver sent one, is a lower bound.
 */
export function nextDelay(
  schedule: readonly number[],
  attemptsMade: number,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
): number | undefined {
  if (attemptsMade >= schedule.length) return undefined;
  const base = schedule[attemptsMade]!;
  const jittered = base === 0 ? 0 : Math.round(base * (0.9 + 0.2 * random()));
  return Math.max(jittered, Math.min(retryAfterMs ?? 0, MAX_RETRY_AFTER_MS));
}

/** parseRetryAfter reads Retry-After (seconds or an HTTP date) as ms; undefined when absent or malformed. */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/** parseSchedule reads "0,5s,5m,30m,2h" (ms, s, m, h; a bare number is seconds). */
export function parseSchedule(raw: string): number[] {
  const parts = raw.split(",").map((s) => s.trim());
  if (parts.length === 0 || parts.length > 50 || parts.some((p) => p === ""))
    throw new Error("must be 1 to 50 comma-separated durations such as 0,5s,5m,2h");
  return parts.map((p) => {
    const ms = parseDurationMs(p);
    if (ms === undefined) throw new Error(`"${p}" is not a duration such as 500ms, 5s, 5m or 2h`);
    if (ms > 7 * 86400_000) throw new Error(`"${p}" is longer than 7 days`);
    return ms;
  });
}

export function parseDurationMs(raw: string): number | undefined {
  const m = /^(\d+)(ms|s|m|h)?$/.exec(raw.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  return m[2] === "ms" ? n : m[2] === "m" ? n * 60_000 : m[2] === "h" ? n * 3600_000 : n * 1000;
}
