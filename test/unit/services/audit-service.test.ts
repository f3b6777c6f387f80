import { describe, expect, it } from "vitest";
import { Scope } from "../../../src/auth/scopes.ts";
import { visibilityOf } from "../../../src/services/audit-service.ts";

const PREFIX = "paas-ws-";

describe("visibilityOf", () => {
  it("turns patterns into exact names and prefixes, held to the service prefix", () => {
    expect(visibilityOf(new Scope(["paas-ws-a", "paas-ws-b"], ["read"]), PREFIX)).toEqual({
      exact: ["paas-ws-a", "paas-ws-b"],
      prefixes: [],
    });
    expect(visibilityOf(new Scope(["paas-ws-team-*", "*", "paas-*", "p*"], ["read"]), PREFIX)).toEqual({
      exact: [],
      prefixes: ["paas-ws-team-", PREFIX],
    });
    expect(visibilityOf(new Scope(["kube-*"], ["read"]), PREFIX)).toEqual({ exact: [], prefixes: [] });
    expect(visibilityOf(Scope.NONE, PREFIX)).toEqual({ exact: [], prefixes: [] });
    expect(visibilityOf(new Scope(["*"], ["read"]))).toEqual({ exact: [], prefixes: [""] });
  });
});
