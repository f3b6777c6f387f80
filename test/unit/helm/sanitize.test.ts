import { describe, expect, it } from "vitest";
import { sanitizeStderr } from "../../../src/helm/sanitize.ts";

describe("sanitizeStderr", () => {
  it("redacts values echoed by Kubernetes, credentials and long base64 runs, and bounds the length", () => {
    const text = sanitizeStderr(
      'Secret "db" is invalid: data[password]: Invalid value: "s3cr3t": bad\nAuthorization: Bearer eyJhbGciOi.abc\n' +
        `https://u:p@h/x ${"QUJD".repeat(20)}\n\u001b[31mred\u001b[0m`,
    );
    expect(text).not.toMatch(/s3cr3t|eyJhbGciOi|u:p@|QUJDQUJD|\u001b/);
    expect(text).toContain("Invalid value: <redacted>");
    expect(sanitizeStderr("x".repeat(10_000)).length).toBeLessThan(4200);
  });
});
