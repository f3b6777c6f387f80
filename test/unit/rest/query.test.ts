import type { DescField } from "@bufbuild/protobuf";
import {
  FieldMaskSchema,
  FieldOptions_OptionTargetType,
  FieldOptionsSchema,
  SourceCodeInfo_LocationSchema,
  UninterpretedOptionSchema,
} from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { ReleaseSchema, ReleaseService } from "../../../gen/paas/v1/release_pb.js";
import { assertQuerySupported, decodeQuery, queryNamesOf } from "../../../src/rest/query.ts";
import { buildRoutes } from "../../../src/rest/routes.ts";

// gRPC-transcoding query parameters in the REST layer: the decoder on its own (the REST
// handler on a real port: test/service/rest/query.test.ts).

const fieldsOf = (fields: readonly DescField[]) => queryNamesOf(fields);

describe("decodeQuery", () => {
  const audit = buildRoutes().find((r) => r.method.name === "ListAuditEvents")!;
  const q = (s: string) => decodeQuery(audit.queryFields, new URLSearchParams(s));

  it("reads the request fields by proto name and by JSON name; unknown parameters are ignored", () => {
    const { init, errors } = q(
      "namespace=paas-ws-a&release=web&caller=k1&operationId=op-1&page_size=10&pageToken=t&utm_source=x&format=json",
    );
    expect(errors).toEqual([]);
    expect(init).toEqual({
      namespace: "paas-ws-a",
      release: "web",
      caller: "k1",
      operationId: "op-1",
      pageSize: 10,
      pageToken: "t",
    });
  });

  it("reads Timestamps as RFC 3339 with an offset, nanoseconds kept, a '+' turned space still an offset", () => {
    const { init, errors } = q("since=2026-01-01T00:00:00Z&until=2026-01-01T12:30:00.123456789%2B02:00");
    expect(errors).toEqual([]);
    expect(init.since).toEqual({ seconds: BigInt(Date.parse("2026-01-01T00:00:00Z") / 1000), nanos: 0 });
    expect(init.until).toEqual({ seconds: BigInt(Date.parse("2026-01-01T10:30:00Z") / 1000), nanos: 123_456_789 });
    expect(q("since=2026-01-01T02:00:00+02:00").init.since).toEqual({
      seconds: BigInt(Date.parse("2026-01-01T00:00:00Z") / 1000),
      nanos: 0,
    });
    expect(q("since=2024-02-29t23:59:59.5-01:00").init.since).toEqual({
      seconds: BigInt(Date.parse("2024-03-01T00:59:59Z") / 1000),
      nanos: 500_000_000,
    });
    expect(q("since=0001-01-01T00:00:00Z").init.since).toEqual({ seconds: -62_135_596_800n, nanos: 0 });
  });

  it("refuses malformed values with pydantic-style errors that never echo the value", () => {
    for (const [query, loc, type] of [
      ["page_size=abc", ["query", "page_size"], "int_parsing"],
      ["pageSize=1.5", ["query", "pageSize"], "int_parsing"],
      ["page_size=", ["query", "page_size"], "int_parsing"],
      ["page_size=99999999999", ["query", "page_size"], "int_range"],
      ["since=yesterday", ["query", "since"], "datetime_parsing"],
      ["since=2026-01-01T00:00:00", ["query", "since"], "datetime_parsing"],
      ["since=2026-02-29T00:00:00Z", ["query", "since"], "datetime_parsing"],
      ["until=2026-01-01T24:00:00Z", ["query", "until"], "datetime_parsing"],
      ["until=10000-01-01T00:00:00Z", ["query", "until"], "datetime_parsing"],
      ["until=0000-12-31T23:59:59Z", ["query", "until"], "datetime_range"],
      ["namespace=a&namespace=b", ["query", "namespace"], "single_value"],
      ["page_size=1&pageSize=2", ["query", "page_size"], "single_value"],
    ] as const) {
      const { init, errors } = q(query);
      expect(errors, query).toEqual([{ loc, msg: expect.any(String), type }]);
      expect(JSON.stringify(errors)).not.toContain("yesterday");
      expect(init, query).toEqual({});
    }
  });

  const field = (schema: { fields: DescField[] }, name: string) => schema.fields.find((f) => f.name === name)!;

  it("reads bools, 64-bit integers, doubles and enums (by name or number)", () => {
    const fields = fieldsOf([
      field(FieldOptionsSchema, "packed"),
      field(FieldOptionsSchema, "ctype"),
      field(UninterpretedOptionSchema, "positive_int_value"),
      field(UninterpretedOptionSchema, "negative_int_value"),
      field(UninterpretedOptionSchema, "double_value"),
    ]);
    const ok = decodeQuery(
      fields,
      new URLSearchParams(
        "packed=yes&ctype=CORD&positive_int_value=18446744073709551615&negativeIntValue=-9223372036854775808&double_value=-2.5e3",
      ),
    );
    expect(ok.errors).toEqual([]);
    expect(ok.init).toEqual({
      packed: true,
      ctype: 1,
      positiveIntValue: 18446744073709551615n,
      negativeIntValue: -9223372036854775808n,
      doubleValue: -2500,
    });
    expect(decodeQuery(fields, new URLSearchParams("packed=FALSE&ctype=2")).init).toEqual({ packed: false, ctype: 2 });
    const bad = decodeQuery(
      fields,
      new URLSearchParams("packed=maybe&ctype=RED&positive_int_value=-1&double_value=NaN"),
    );
    expect(bad.errors.map((e) => `${e.loc[1]} ${e.type}`)).toEqual([
      "packed bool_parsing",
      "ctype enum",
      "positive_int_value int_range",
      "double_value float_parsing",
    ]);
    expect(bad.errors[1]!.msg).toBe("Input should be 'STRING', 'CORD' or 'STRING_PIECE'");
    expect(bad.init).toEqual({});
  });

  it("reads repeated fields from repeated parameters, in order, and names the bad element", () => {
    const fields = fieldsOf([
      field(FieldMaskSchema, "paths"),
      field(SourceCodeInfo_LocationSchema, "path"),
      field(FieldOptionsSchema, "targets"),
    ]);
    const ok = decodeQuery(
      fields,
      new URLSearchParams("paths=a&paths=b&path=1&path=-2&targets=TARGET_TYPE_FILE&targets=9"),
    );
    expect(ok.errors).toEqual([]);
    expect(ok.init).toEqual({
      paths: ["a", "b"],
      path: [1, -2],
      targets: [FieldOptions_OptionTargetType.TARGET_TYPE_FILE, FieldOptions_OptionTargetType.TARGET_TYPE_METHOD],
    });
    const bad = decodeQuery(fields, new URLSearchParams("path=1&path=x"));
    expect(bad.errors).toEqual([
      { loc: ["query", "path", 1], msg: expect.stringContaining("valid integer"), type: "int_parsing" },
    ]);
    expect(bad.init).toEqual({});
  });

  it('reads Durations as seconds or proto3 JSON\'s "1.5s"', () => {
    const timeout = [...buildRoutes().find((r) => r.method.name === "InstallRelease")!.bodyFields].find(
      (f) => f.name === "timeout",
    )!;
    const fields = fieldsOf([timeout]);
    expect(decodeQuery(fields, new URLSearchParams("timeout=300")).init).toEqual({
      timeout: { seconds: 300n, nanos: 0 },
    });
    expect(decodeQuery(fields, new URLSearchParams("timeout=1.5s")).init).toEqual({
      timeout: { seconds: 1n, nanos: 500_000_000 },
    });
    expect(decodeQuery(fields, new URLSearchParams("timeout=5m")).errors[0]?.type).toBe("time_delta_parsing");
    expect(decodeQuery(fields, new URLSearchParams("timeout=-1")).errors[0]?.type).toBe("time_delta_parsing");
  });

  it("refuses at start a query field it cannot read", () => {
    const method = ReleaseService.method.getRelease;
    expect(() => assertQuerySupported(method, field(UninterpretedOptionSchema, "string_value"))).toThrow(
      /query field string_value/,
    );
    expect(() => assertQuerySupported(method, field(UninterpretedOptionSchema, "name"))).toThrow(/query field name/);
    expect(() => assertQuerySupported(method, field(ReleaseSchema, "values"))).toThrow(/query field values/);
    expect(() => assertQuerySupported(method, field(UninterpretedOptionSchema, "double_value"))).not.toThrow();
  });

  it("only body-less routes take query parameters, and never a path field", () => {
    const routes = buildRoutes();
    const names = (name: string) =>
      [...new Set(routes.find((r) => r.method.name === name)!.queryFields.values())].map((f) => f.name);
    expect(names("GetRelease")).toEqual([]);
    expect(names("UninstallRelease")).toEqual(["idempotency_key", "async"]);
    expect(names("UpgradeRelease")).toEqual([]);
    expect(names("ListAuditEvents")).toEqual([
      "namespace",
      "release",
      "caller",
      "since",
      "until",
      "page_size",
      "page_token",
      "operation_id",
    ]);
  });
});
