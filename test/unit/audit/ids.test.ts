import { describe, expect, it } from "vitest";
import { newAuditId, newOperationId } from "../../../src/audit/ids.ts";
import { isLabelValue } from "../../../src/domain/names.ts";

describe("newAuditId", () => {
  it("is 28 hex digits that start with the millisecond timestamp", () => {
    const id = newAuditId(Date.UTC(2030, 0, 1));
    expect(id).toMatch(/^[0-9a-f]{28}$/);
    expect(parseInt(id.slice(0, 12), 16)).toBe(Date.UTC(2030, 0, 1));
  });

  it("is unique and sorts in creation order, within one millisecond too", () => {
    const ids = Array.from({ length: 5000 }, () => newAuditId());
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    const now = Date.now() + 10_000;
    const same = Array.from({ length: 100 }, () => newAuditId(now));
    expect([...same].sort()).toEqual(same);
    expect(new Set(same).size).toBe(100);
  });

  it("never goes backwards when the clock does", () => {
    const a = newAuditId(Date.now() + 20_000);
    const b = newAuditId(Date.now());
    expect(b > a).toBe(true);
  });
});

describe("newOperationId", () => {
  it("is a lowercase ULID: 26 characters of [0-9a-z], usable as a label value", () => {
    for (let i = 0; i < 200; i++) {
      const id = newOperationId();
      expect(id).toMatch(/^[0-9a-hjkmnp-tv-z]{26}$/);
      expect(isLabelValue(id)).toBe(true);
    }
  });

  it("is unique and its first 10 characters sort by time", () => {
    const ids = new Set(Array.from({ length: 5000 }, () => newOperationId()));
    expect(ids.size).toBe(5000);
    const early = newOperationId(Date.UTC(2025, 0, 1));
    const late = newOperationId(Date.UTC(2025, 0, 1, 0, 0, 0, 1));
    expect(early.slice(0, 10) < late.slice(0, 10)).toBe(true);
    // 2025-01-01T00:00:00Z in Crockford base32, as a ULID spells it.
    expect(early.slice(0, 10)).toBe(
      (1735689600000)
        .toString(32)
        .padStart(10, "0")
        .replace(/[a-v]/g, (c) => "abcdefghjkmnpqrstvwxyz"[parseInt(c, 32) - 10]!),
    );
  });
});
