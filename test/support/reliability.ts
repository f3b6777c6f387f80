import { setTimeout as sleep } from "node:timers/promises";
import * as k8s from "@kubernetes/client-node";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AuditOutcome, AuditService, AuditStage, type AuditEvent } from "../../gen/paas/v1/audit_pb.js";
import { TEST_LEASE_NAMESPACE, testbedEnv } from "./testbed.ts";

// Helpers of the fault-injection suites (replicas, audit store down, idempotency): what the
// cluster and the audit log hold after the fact.

const tb = testbedEnv();
const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
export const core = kc.makeApiClient(k8s.CoreV1Api);
export const coordination = kc.makeApiClient(k8s.CoordinationV1Api);

/** The kwok stage annotation that delays a pod's readiness (scripts/testbed). */
export const KWOK_READY_DELAY = "pod-ready.stage.kwok.x-k8s.io/delay";

/** auditClient is a typed AuditService client over gRPC. */
export function auditClient(baseUrl: string, apiKey: string): Client<typeof AuditService> {
  const transport = createGrpcTransport({
    baseUrl,
    interceptors: [
      (next) => (req) => {
        req.header.set("x-api-key", apiKey);
        return next(req);
      },
    ],
  });
  return createClient(AuditService, transport);
}

/** allAuditEvents pages through ListAuditEvents for one namespace (small pages, so paging is exercised). */
export async function allAuditEvents(
  client: Client<typeof AuditService>,
  namespace: string,
  pageSize = 7,
): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  let pageToken = "";
  for (let page = 0; page < 1000; page++) {
    const res = await client.listAuditEvents({ namespace, pageSize, pageToken });
    out.push(...res.events);
    if (!res.nextPageToken) return out;
    pageToken = res.nextPageToken;
  }
  throw new Error("ListAuditEvents did not end after 1000 pages");
}

/** OperationRecords is the intents and outcomes of one operation. */
export interface OperationRecords {
  operationId: string;
  intents: AuditEvent[];
  outcomes: AuditEvent[];
}

/** byOperation groups audit records by operation id. */
export function byOperation(events: AuditEvent[]): Map<string, OperationRecords> {
  const ops = new Map<string, OperationRecords>();
  for (const e of events) {
    let op = ops.get(e.operationId);
    if (!op) ops.set(e.operationId, (op = { operationId: e.operationId, intents: [], outcomes: [] }));
    if (e.stage === AuditStage.INTENT) op.intents.push(e);
    else if (e.stage === AuditStage.OUTCOME) op.outcomes.push(e);
    else throw new Error(`audit record ${e.id} has no stage`);
  }
  return ops;
}

/** outcomeName renders an AuditOutcome for assertion messages. */
export function outcomeName(o: AuditOutcome): string {
  return AuditOutcome[o] ?? String(o);
}

/** StoredRevision is one of Helm's storage Secrets of a release. */
export interface StoredRevision {
  version: number;
  status: string;
  labels: Record<string, string>;
}

/** helmRevisions lists the Helm storage Secrets of a release, oldest first. */
export async function helmRevisions(namespace: string, release: string): Promise<StoredRevision[]> {
  const secrets = await core.listNamespacedSecret({ namespace, labelSelector: `owner=helm,name=${release}` });
  return secrets.items
    .map((s) => {
      const labels = s.metadata?.labels ?? {};
      return { version: Number(labels.version), status: labels.status ?? "", labels };
    })
    .sort((a, b) => a.version - b.version);
}

/** releaseLeases lists the operator Leases (in the test lease namespace) guarding something in `namespace`. */
export async function releaseLeases(namespace: string): Promise<k8s.V1Lease[]> {
  const leases = await coordination.listNamespacedLease({ namespace: TEST_LEASE_NAMESPACE });
  return leases.items.filter((l) => l.metadata?.annotations?.["paas.io/namespace"] === namespace);
}

/** waitFor polls `probe` until it returns a value that is not undefined, or throws after timeoutMs. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `; last error: ${String(last)}` : ""}`,
      );
    await sleep(intervalMs);
  }
}

/** deleteNamespace deletes a test namespace; never throws. */
export async function deleteNamespace(name: string): Promise<void> {
  await core.deleteNamespace({ name }).catch(() => undefined);
}
