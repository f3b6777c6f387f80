import { describe, expect, it } from "vitest";
import { addressProblem, guardedLookup } from "../../../src/webhooks/address-guard.ts";

describe("webhook address guard", () => {
  it.each([
    ["169.254.169.254", false, "a link-local address"],
    ["metadata.google.internal", true, "a cloud metadata service"],
    ["100.100.100.200", true, "a cloud metadata service"],
    ["[fd00:ec2::254]", true, "a cloud metadata service"],
    ["[::ffff:169.254.169.254]", true, "a link-local address"],
    ["127.0.0.1", false, "a loopback address"],
    ["127.8.9.10", false, "a loopback address"],
    ["[::1]", false, "a loopback address"],
    ["[::ffff:127.0.0.1]", false, "a loopback address"],
    ["localhost", false, "a loopback address"],
    ["api.localhost", false, "a loopback address"],
    ["0.0.0.0", true, "the unspecified address"],
    ["[::]", true, "the unspecified address"],
  ])("refuses %s (allowLoopback %s)", (host, allow, why) => {
    expect(addressProblem(host, allow)).toBe(why);
  });

  it("allows loopback only when told, and ordinary hosts always", () => {
    expect(addressProblem("127.0.0.1", true)).toBeUndefined();
    expect(addressProblem("[::1]", true)).toBeUndefined();
    expect(addressProblem("erp.example.com", false)).toBeUndefined();
    expect(addressProblem("10.1.2.3", false)).toBeUndefined();
  });

  it("refuses a name that resolves to a refused address when connecting", async () => {
    const lookup = guardedLookup(false);
    const err = await new Promise<Error | null>((resolve) => lookup("localhost", {}, (e) => resolve(e)));
    expect(err?.message).toMatch(/resolves to a loopback address/);
    expect((err as NodeJS.ErrnoException).code).toBe("ADDRESS_REFUSED");
    const ok = await new Promise<string>((resolve, reject) =>
      guardedLookup(true)("localhost", {}, (e, a) => (e ? reject(e) : resolve(String(a)))),
    );
    expect(ok).toMatch(/^(127\.0\.0\.1|::1)$/);
  });
});
