import { describe, expect, it } from "vitest";
import { PaasError } from "../../../src/errors.ts";
import {
  assertNamespaceName,
  assertReleaseName,
  isDnsLabel,
  isDnsLabelPrefix,
  isDnsSubdomain,
  isLabelKey,
  isLabelValue,
  isReleaseName,
} from "../../../src/domain/names.ts";

function refusal(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PaasError);
    expect((err as PaasError).kind).toBe("invalid_argument");
    return (err as PaasError).message;
  }
  return "accepted";
}

describe("Kubernetes and Helm names", () => {
  it("DNS-1123 labels and subdomains", () => {
    for (const ok of ["a", "0", "paas-ws-a", "a--b", "x".repeat(63)]) expect(isDnsLabel(ok), ok).toBe(true);
    for (const bad of ["", "A", "-a", "a-", "a.b", "a_b", "x".repeat(64)]) expect(isDnsLabel(bad), bad).toBe(false);
    for (const ok of ["paas-ws-", "a", "a-b", "0-"]) expect(isDnsLabelPrefix(ok), ok).toBe(true);
    for (const bad of ["", "-a", "A-", "a.b-", "a_", "x".repeat(64)]) expect(isDnsLabelPrefix(bad), bad).toBe(false);
    for (const ok of ["a", "a.b", "my-app.v2", `${"x".repeat(63)}.${"y".repeat(63)}`])
      expect(isDnsSubdomain(ok), ok).toBe(true);
    for (const bad of ["", ".a", "a.", "a..b", "a.-b", "A.b", `${"x.".repeat(126)}xy`])
      expect(isDnsSubdomain(bad), bad).toBe(false);
  });

  it("release names: Helm's rule (a DNS-1123 subdomain of at most 53 characters)", () => {
    for (const ok of ["web", "my-app.v2", "a.b.c", "x".repeat(53)]) expect(isReleaseName(ok), ok).toBe(true);
    for (const bad of ["", "Web", "a_b", "a.", ".a", "a..b", "a-.b", "x".repeat(54), "a,b", "a=b"])
      expect(isReleaseName(bad), bad).toBe(false);
  });

  it("a valid release name is a valid label value (storage selector, instance label)", () => {
    for (const name of ["web", "my-app.v2", "a.b.c", "x".repeat(53)]) expect(isLabelValue(name), name).toBe(true);
  });

  it("label values and keys", () => {
    for (const ok of ["", "a", "A.b_c-d", "6.13.0", "x".repeat(63)]) expect(isLabelValue(ok), ok).toBe(true);
    for (const bad of ["-a", "a-", "_a", "a b", "a/b", "x".repeat(64)]) expect(isLabelValue(bad), bad).toBe(false);
    for (const ok of ["app", "app.kubernetes.io/instance", "A_b", "example.com/X.y"])
      expect(isLabelKey(ok), ok).toBe(true);
    for (const bad of ["", "/a", "a/", "Example.com/a", "a/b/c", "x".repeat(64), `${"x".repeat(254)}/a`])
      expect(isLabelKey(bad), bad).toBe(false);
  });

  it("the adapters' checks refuse with INVALID_ARGUMENT, and accept a dotted release name", () => {
    expect(refusal(() => assertReleaseName("my-app.v2"))).toBe("accepted");
    expect(refusal(() => assertNamespaceName("paas-ws-a"))).toBe("accepted");
    expect(refusal(() => assertReleaseName("my_app"))).toMatch(
      /release name "my_app" must be a valid Helm release name/,
    );
    expect(refusal(() => assertReleaseName("x".repeat(54)))).toMatch(/at most 53 characters/);
    expect(refusal(() => assertNamespaceName("paas.ws"))).toMatch(
      /namespace "paas.ws" must be a lowercase RFC 1123 label/,
    );
    // Caller input is quoted safely in the message.
    expect(refusal(() => assertNamespaceName("a\nb"))).toContain('"a\\nb"');
  });
});
