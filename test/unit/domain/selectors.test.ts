import { describe, expect, it } from "vitest";
import { PaasError } from "../../../src/errors.ts";
import { parseLabelSelector, selectorKeys, selectorMatches, selectsByValue } from "../../../src/domain/selectors.ts";

describe("selectorMatches", () => {
  const labels = { app: "db", tier: "data" };
  it.each([
    [{ matchLabels: { app: "db" } }, true],
    [{ matchLabels: { app: "web" } }, false],
    [{ matchExpressions: [{ key: "tier", operator: "In", values: ["data", "cache"] }] }, true],
    [{ matchExpressions: [{ key: "tier", operator: "NotIn", values: ["data"] }] }, false],
    [{ matchExpressions: [{ key: "zone", operator: "NotIn", values: ["a"] }] }, true],
    [{ matchExpressions: [{ key: "app", operator: "Exists" }] }, true],
    [{ matchExpressions: [{ key: "app", operator: "DoesNotExist" }] }, false],
    [{ matchExpressions: [{ key: "app", operator: "Gt", values: ["1"] }] }, false],
  ])("%j → %s", (sel, want) => {
    expect(selectorMatches(sel, labels)).toBe(want);
  });
});

describe("parseLabelSelector", () => {
  it("reads kubectl's syntax", () => {
    expect(parseLabelSelector("")).toBeUndefined();
    expect(parseLabelSelector("app=web, tier==edge,zone!=a")).toEqual({
      matchLabels: { app: "web", tier: "edge" },
      matchExpressions: [{ key: "zone", operator: "NotIn", values: ["a"] }],
    });
    expect(parseLabelSelector("example.com/x in (a, b.c),!legacy,y")).toEqual({
      matchExpressions: [
        { key: "example.com/x", operator: "In", values: ["a", "b.c"] },
        { key: "legacy", operator: "DoesNotExist" },
        { key: "y", operator: "Exists" },
      ],
    });
  });

  it("names what it refuses, under the caller's name for it", () => {
    const why = (raw: string) => {
      try {
        parseLabelSelector(raw, "pod selector");
      } catch (err) {
        expect(err).toBeInstanceOf(PaasError);
        expect((err as PaasError).kind).toBe("invalid_argument");
        return (err as PaasError).message;
      }
      return "accepted";
    };
    expect(why("a=b,")).toBe('pod selector "a=b,": empty term');
    expect(why("a=b_")).toMatch(/"b_" is not a label value/);
    expect(why(`a=${"v".repeat(64)}`)).toMatch(/is not a label value/);
    expect(why("Example.com/a=b")).toMatch(/"Example.com\/a" is not a label key/);
    expect(why("a/=b")).toMatch(/is not a label key/);
    expect(why(`${"k".repeat(64)}=b`)).toMatch(/is not a label key/);
    expect(why("a.b/c.d=e.f")).toBe("accepted");
  });

  it("tells which keys it uses and whether it says what objects are", () => {
    const sel = parseLabelSelector("a=b,c notin (x),!d")!;
    expect(selectorKeys(sel)).toEqual(["a", "c", "d"]);
    expect(selectsByValue(sel)).toBe(true);
    expect(selectsByValue(parseLabelSelector("c in (x)")!)).toBe(true);
    expect(selectsByValue(parseLabelSelector("c notin (x),!d,e")!)).toBe(false);
  });
});
