import { describe, expect, it } from "vitest";
import {
  DEFAULT_SCHEDULE_MS,
  MAX_RETRY_AFTER_MS,
  nextDelay,
  parseRetryAfter,
  parseSchedule,
} from "../../../src/webhooks/schedule.ts";

describe("retry schedule", () => {
  it("is the spec's: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h", () => {
    expect(DEFAULT_SCHEDULE_MS.map((ms) => ms / 1000)).toEqual([
      0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400,
    ]);
  });

  it("gives the next delay with ±10 % jitter, undefined after the last attempt", () => {
    expect(nextDelay(DEFAULT_SCHEDULE_MS, 1, undefined, () => 0)).toBe(4500);
    expect(nextDelay(DEFAULT_SCHEDULE_MS, 1, undefined, () => 1)).toBe(5500);
    expect(nextDelay(DEFAULT_SCHEDULE_MS, 1, undefined, () => 0.5)).toBe(5000);
    expect(nextDelay(DEFAULT_SCHEDULE_MS, 9, undefined, () => 0.5)).toBe(86_400_000);
    expect(nextDelay(DEFAULT_SCHEDULE_MS, 10, undefined)).toBeUndefined();
    expect(nextDelay([0, 1000], 0, undefined)).toBe(0);
    const seen = new Set(Array.from({ length: 50 }, () => nextDelay(DEFAULT_SCHEDULE_MS, 2, undefined)));
    expect(seen.size).toBeGreaterThan(1);
    for (const d of seen) expect(d! >= 270_000 && d! <= 330_000).toBe(true);
  });

  it("takes Retry-After as a lower bound, at most 24 h", () => {
    expect(nextDelay([0, 1000], 1, 4000, () => 0.5)).toBe(4000);
    expect(nextDelay([0, 10_000], 1, 4000, () => 0.5)).toBe(10_000);
    expect(nextDelay([0, 1000], 1, 10 * 86_400_000, () => 0.5)).toBe(MAX_RETRY_AFTER_MS);
    expect(nextDelay([0, 1000], 2, 4000)).toBeUndefined();
  });

  it("reads Retry-After as seconds or an HTTP date", () => {
    const now = Date.UTC(2030, 0, 1, 0, 0, 0);
    expect(parseRetryAfter("120", now)).toBe(120_000);
    expect(parseRetryAfter(new Date(now + 30_000).toUTCString(), now)).toBe(30_000);
    expect(parseRetryAfter(new Date(now - 30_000).toUTCString(), now)).toBe(0);
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter("soon", now)).toBeUndefined();
  });

  it("parses WEBHOOK_RETRY_SCHEDULE and refuses nonsense", () => {
    expect(parseSchedule("0, 500ms,5s,5m,2h,7")).toEqual([0, 500, 5000, 300_000, 7_200_000, 7000]);
    expect(() => parseSchedule("0,,5s")).toThrow(/comma-separated/);
    expect(() => parseSchedule("0,soon")).toThrow(/"soon" is not a duration/);
    expect(() => parseSchedule("0,200h")).toThrow(/longer than 7 days/);
  });
});
