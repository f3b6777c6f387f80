import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { describe, expect, it } from "vitest";
import { codeOf, type ErrorKind, PaasError, printable, reasonOf, toConnectError } from "../../src/errors.ts";

// Every refusal is a PaasError; src/errors.ts alone turns its kind into a gRPC code.

const KINDS: Record<ErrorKind, [Code, string]> = {
  invalid_argument: [Code.InvalidArgument, "invalid_argument"],
  permission_denied: [Code.PermissionDenied, "permission_denied"],
  unauthenticated: [Code.Unauthenticated, "unauthenticated"],
  not_found: [Code.NotFound, "not_found"],
  already_exists: [Code.AlreadyExists, "already_exists"],
  conflict: [Code.Aborted, "aborted"],
  failed_precondition: [Code.FailedPrecondition, "failed_precondition"],
  timeout: [Code.DeadlineExceeded, "deadline_exceeded"],
  resource_exhausted: [Code.ResourceExhausted, "resource_exhausted"],
  unavailable: [Code.Unavailable, "unavailable"],
  cancelled: [Code.Canceled, "canceled"],
  internal: [Code.Internal, "internal"],
};

describe("errors", () => {
  it("maps every kind to its gRPC code, and the audit log's code names stay the snake_case ones it always stored", () => {
    for (const [kind, [code, name]] of Object.entries(KINDS) as [ErrorKind, [Code, string]][]) {
      expect(codeOf(kind), kind).toBe(code);
      expect(toConnectError(new PaasError(kind, "m")).code, kind).toBe(code);
      // Audit records (errorCode) are written with connect-es's codeToString.
      expect(codeToString(code), kind).toBe(name);
    }
  });

  it("keeps a PaasError's message and reason, passes a ConnectError through, and hides anything else", () => {
    const e = toConnectError(
      new PaasError("resource_exhausted", "too big", { reason: "VALUES_TOO_LARGE", cause: new Error("secret detail") }),
    );
    expect(e.rawMessage).toBe("too big");
    expect(reasonOf(e)).toBe("VALUES_TOO_LARGE");
    const c = new ConnectError("as is", Code.Canceled);
    expect(toConnectError(c)).toBe(c);
    const hidden = toConnectError(new Error("password=hunter2"));
    expect(hidden.code).toBe(Code.Internal);
    expect(hidden.rawMessage).toBe("internal error");
  });

  it("printable quotes and shortens what a caller sent", () => {
    expect(printable('a\nb"c')).toBe('a\\nb\\"c');
    expect(printable("x".repeat(100))).toBe(`${"x".repeat(80)}…`);
  });
});
