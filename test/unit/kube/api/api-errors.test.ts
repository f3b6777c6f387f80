import { ApiException } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { PaasError } from "../../../../src/errors.ts";
import { HttpStatusError, isNetworkError, kubeError, statusOf } from "../../../../src/kube/api/api-errors.ts";

function apiError(code: number, status: Record<string, unknown>): ApiException<unknown> {
  // client-node hands the Status body over as text.
  return new ApiException(
    code,
    "Unknown API Status Code!",
    JSON.stringify({ kind: "Status", apiVersion: "v1", code, ...status }),
    {
      "content-type": "application/json",
      authorization: "Bearer secret-token",
    },
  );
}

describe("kubeError", () => {
  it.each([
    [404, { reason: "NotFound", message: 'namespaces "x" not found' }, "not_found"],
    [409, { reason: "AlreadyExists", message: 'namespaces "x" already exists' }, "already_exists"],
    [409, { reason: "Conflict", message: "the object has been modified" }, "conflict"],
    [
      403,
      { reason: "Forbidden", message: 'User "system:serviceaccount:paas:op" cannot list secrets' },
      "permission_denied",
    ],
    [422, { reason: "Invalid", message: "spec.hard[limits.cpu]: Invalid value" }, "invalid_argument"],
    [400, { reason: "BadRequest", message: "bad" }, "invalid_argument"],
    [401, { reason: "Unauthorized" }, "internal"],
    [429, { reason: "TooManyRequests" }, "unavailable"],
    [500, { reason: "InternalError", message: "etcd leader changed" }, "internal"],
    [503, { reason: "ServiceUnavailable" }, "unavailable"],
    [418, {}, "internal"],
  ])("maps HTTP %i (%j) to %s", (code, status, kind) => {
    const err = kubeError(apiError(code, status), 'read namespace "x"');
    expect(err).toBeInstanceOf(PaasError);
    expect(err.kind).toBe(kind);
    expect(err.message.startsWith('read namespace "x": ')).toBe(true);
    // Never the raw body or headers.
    expect(err.message).not.toMatch(/Bearer|HTTP-Code|Headers|\{/);
    expect(err.cause).toBeDefined();
  });

  it("keeps the useful part of quota and validation refusals", () => {
    const quota = kubeError(
      apiError(403, {
        reason: "Forbidden",
        message:
          'pods "big" is forbidden: exceeded quota: paas-quota, requested: limits.cpu=4, used: limits.cpu=0, limited: limits.cpu=1',
      }),
      "create pod",
    );
    expect(quota.kind).toBe("resource_exhausted");
    expect(quota.message).toContain("exceeded quota: paas-quota");
    const invalid = kubeError(apiError(422, { reason: "Invalid", message: "x".repeat(1000) }), "apply quota");
    expect(invalid.message.length).toBeLessThan(350);
    // RBAC refusals do not echo the service account.
    expect(
      kubeError(apiError(403, { message: 'User "system:serviceaccount:paas:op" cannot' }), "x").message,
    ).not.toContain("serviceaccount");
  });

  it("maps unreachable servers and timeouts to unavailable", () => {
    const refused = Object.assign(new TypeError("fetch failed"), {
      cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
    });
    expect(kubeError(refused, "ping").kind).toBe("unavailable");
    expect(kubeError(new DOMException("The operation was aborted due to timeout", "TimeoutError"), "list").kind).toBe(
      "unavailable",
    );
    expect(kubeError(Object.assign(new Error("x"), { code: "UND_ERR_SOCKET" }), "list").kind).toBe("unavailable");
    expect(isNetworkError(new Error("boom"))).toBe(false);
  });

  it("keeps PaasErrors and hides anything else", () => {
    const own = new PaasError("not_found", "gone");
    expect(kubeError(own, "x")).toBe(own);
    const other = kubeError(new Error("secret internals"), "list pods");
    expect(other.kind).toBe("internal");
    expect(other.message).toBe("list pods: unexpected failure");
  });

  it("reads Status bodies from our own HTTP errors too", () => {
    const err = new HttpStatusError(
      410,
      '{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version"}',
    );
    expect(statusOf(err)).toEqual({ code: 410, reason: "Expired", message: "too old resource version" });
    expect(statusOf(new HttpStatusError(502, "<html>bad gateway</html>"))).toEqual({});
    expect(kubeError(new HttpStatusError(502, "<html>"), "watch").kind).toBe("unavailable");
  });
});
