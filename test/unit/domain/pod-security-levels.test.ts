import { describe, expect, it } from "vitest";
import { enforcedLevel, isPodSecurityLevel, POD_SECURITY_LEVELS } from "../../../src/domain/pod-security-levels.ts";

describe("Pod Security levels", () => {
  it("offers restricted (first: the default) and baseline, never privileged", () => {
    expect(POD_SECURITY_LEVELS).toEqual(["restricted", "baseline"]);
    for (const ok of ["restricted", "baseline"]) expect(isPodSecurityLevel(ok), ok).toBe(true);
    for (const bad of ["privileged", "Restricted", "", " baseline"]) expect(isPodSecurityLevel(bad), bad).toBe(false);
  });

  it("reads a namespace's enforce label, privileged included; anything else is none", () => {
    for (const level of ["restricted", "baseline", "privileged"]) expect(enforcedLevel(level)).toBe(level);
    for (const other of ["", "Baseline", "strict"]) expect(enforcedLevel(other)).toBe("");
  });
});
