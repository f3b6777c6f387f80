import { describe, expect, it } from "vitest";
import { AuditOutcome, AuditStage } from "../../../gen/paas/v1/audit_pb.js";
import { toAuditEvent } from "../../../src/mapping/audit-mapping.ts";
import { auditRecord } from "../../support/memory-audit-store.ts";

describe("toAuditEvent", () => {
  it("maps stages and outcomes; intents have no outcome", () => {
    expect(toAuditEvent(auditRecord({ stage: "intent" }))).toMatchObject({
      stage: AuditStage.INTENT,
      outcome: AuditOutcome.UNSPECIFIED,
    });
    for (const [outcome, value] of [
      ["succeeded", AuditOutcome.SUCCEEDED],
      ["failed", AuditOutcome.FAILED],
      ["recovered", AuditOutcome.RECOVERED],
      ["denied", AuditOutcome.DENIED],
    ] as const) {
      expect(toAuditEvent(auditRecord({ stage: "outcome", outcome }))).toMatchObject({
        stage: AuditStage.OUTCOME,
        outcome: value,
      });
    }
  });

  it("never fails a page over one odd record: unknown stage, fractional or missing duration", () => {
    const odd = toAuditEvent(
      auditRecord({ stage: "paused" as never, outcome: "vanished" as never, durationMs: Number.NaN }),
    );
    expect(odd).toMatchObject({ stage: AuditStage.UNSPECIFIED, outcome: AuditOutcome.UNSPECIFIED, durationMs: 0n });
    expect(toAuditEvent(auditRecord({ durationMs: 12.6 })).durationMs).toBe(13n);
  });
});
