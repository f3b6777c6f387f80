import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPaasClient, type PaasClient } from "../../clients/paas-client.ts";
import {
  OperationState,
  StepState,
  WatchOperationRequestSchema,
  WatchOperationResponseSchema,
  type Operation,
} from "../../gen/paas/v1/operation_pb.js";
import { ReleaseStatus } from "../../gen/paas/v1/release_pb.js";
import { newOperationId } from "../../src/audit/ids.ts";
import { failure } from "../support/failure.ts";
import {
  allAuditEvents,
  auditClient,
  byOperation,
  deleteNamespace,
  helmRevisions,
  KWOK_READY_DELAY,
  waitFor,
} from "../support/reliability.ts";
import { startServer, uniqueNamespace, type ServerProcess } from "../support/testbed.ts";

// Every mutation as an operation, on the real cluster with real helm: async mode over REST
// (Prefer: respond-async → 202), the steps and the pods' progress through WatchOperation
// (Connect client and grpc-js), Server-Sent Events and the ops API's job shape; cancellation
// of a queued operation, of an install while helm applies, of a rollback once helm runs.

const CHART = "testbed/podinfo";
const VERSION = "6.13.0";

type Seen = { state: OperationState; steps: string[]; ready: number; desired: number };
const seenOf = (op: Operation | undefined): Seen => ({
  state: op?.state ?? OperationState.UNSPECIFIED,
  steps: (op?.steps ?? []).map((s) => s.name),
  ready: op?.progress?.podsReady ?? -1,
  desired: op?.progress?.podsDesired ?? -1,
});

/** grpcWatch follows WatchOperation with @grpc/grpc-js (messages encoded with the generated schemas). */
function grpcWatch(port: number, apiKey: string, id: string): Promise<Seen[]> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const meta = new grpc.Metadata();
  meta.set("x-api-key", apiKey);
  const call = client.makeServerStreamRequest(
    "/paas.v1.OperationService/WatchOperation",
    (m: Uint8Array) => Buffer.from(m),
    (b: Buffer) => fromBinary(WatchOperationResponseSchema, b),
    toBinary(WatchOperationRequestSchema, create(WatchOperationRequestSchema, { id })),
    meta,
  );
  const out: Seen[] = [];
  return new Promise((resolve, reject) => {
    call.on("data", (m: { operation?: Operation }) => out.push(seenOf(m.operation)));
    call.on("error", (err) => {
      client.close();
      reject(err);
    });
    call.on("end", () => {
      client.close();
      resolve(out);
    });
  });
}

/** sse reads the Server-Sent Events of an operation with a plain HTTP client until the stream ends. */
async function sse(
  server: ServerProcess,
  id: string,
): Promise<{ status: number; type: string; events: Array<Record<string, unknown>> }> {
  const res = await fetch(`${server.baseUrl}/api/operations/${id}/events`, { headers: { "x-api-key": server.apiKey } });
  const text = await res.text();
  const events = text
    .split("\n\n")
    .filter((block) => block.includes("event: operation"))
    .map(
      (block) =>
        JSON.parse(
          block
            .split("\n")
            .find((l) => l.startsWith("data: "))!
            .slice(6),
        ) as Record<string, unknown>,
    );
  return { status: res.status, type: res.headers.get("content-type") ?? "", events };
}

describe("operations on the real cluster", () => {
  let server: ServerProcess;
  let client: PaasClient;
  const ns = uniqueNamespace("ops");

  beforeAll(async () => {
    server = await startServer();
    client = createPaasClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, protocol: "connect" });
    await client.namespaces.createNamespace({ name: ns, podSecurity: "baseline" });
  });

  afterAll(async () => {
    await server?.stop();
    await deleteNamespace(ns);
  });

  it("async install with wait: 202 + Location, steps in order with times, progress 0/2 → 2/2 to every watcher, the job shape", async () => {
    const res = await fetch(`${server.baseUrl}/api/releases`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": server.apiKey, prefer: "respond-async" },
      body: JSON.stringify({
        namespace: ns,
        name: "web",
        chart: CHART,
        version: VERSION,
        wait: true,
        values: { replicaCount: 2, podAnnotations: { [KWOK_READY_DELAY]: "4s" } },
      }),
    });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { operation_id: string; status: string };
    const id = body.operation_id;
    expect(id).toMatch(/^[0-9a-z]{26}$/);
    expect(["queued", "running"]).toContain(body.status);
    expect(res.headers.get("location")).toBe(`/api/operations/${id}`);
    expect(res.headers.get("x-operation-id")).toBe(id);
    expect(res.headers.get("operation-id")).toBe(id);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);

    const connectSeen: Seen[] = [];
    const connectWatch = (async () => {
      for await (const m of client.operations.watchOperation({ id })) connectSeen.push(seenOf(m.operation));
    })();
    const [grpcSeen, events] = await Promise.all([
      grpcWatch(server.port, server.apiKey, id),
      sse(server, id),
      connectWatch,
    ]);

    for (const seen of [connectSeen, grpcSeen]) {
      expect(seen.at(-1)?.state).toBe(OperationState.SUCCEEDED);
      expect(seen.at(-1)?.steps).toEqual(["wait-for-release", "pull", "render-guard", "apply", "wait-ready", "record"]);
      const waiting = seen.filter((s) => s.steps.at(-1) === "wait-ready" && s.desired === 2);
      expect(waiting[0]?.ready).toBe(0);
      expect(waiting.at(-1)?.ready).toBe(2);
    }
    // The same sequence as Server-Sent Events to a plain HTTP client.
    expect(events.status).toBe(200);
    expect(events.type).toMatch(/^text\/event-stream/);
    expect(events.events.at(-1)).toMatchObject({ id, state: "OPERATION_STATE_SUCCEEDED", done: true });
    const progress = events.events
      .map((e) => e.progress as { pods_ready: number; pods_desired: number } | null)
      .filter((p) => p && p.pods_desired === 2);
    expect(progress[0]?.pods_ready).toBe(0);
    expect(progress.at(-1)?.pods_ready).toBe(2);

    // Polling shows the steps in order, each with its times.
    const polled = (await (
      await fetch(`${server.baseUrl}/api/operations/${id}`, { headers: { "x-api-key": server.apiKey } })
    ).json()) as Record<string, unknown>;
    const steps = polled.steps as Array<{
      name: string;
      order: number;
      state: string;
      detail: string;
      started_at: string;
      finished_at: string;
    }>;
    expect(steps.map((s) => s.order)).toEqual([1, 2, 3, 4, 5, 6]);
    for (let i = 1; i < steps.length; i++)
      expect(Date.parse(steps[i]!.started_at)).toBeGreaterThanOrEqual(Date.parse(steps[i - 1]!.started_at));
    expect(
      steps.every((s) => s.state === "STEP_STATE_SUCCEEDED" && Date.parse(s.finished_at) >= Date.parse(s.started_at)),
    ).toBe(true);
    expect(steps.find((s) => s.name === "pull")?.detail).toMatch(/^podinfo 6\.13\.0/);
    expect(steps.find((s) => s.name === "wait-ready")?.detail).toBe("2/2 pods ready");

    // The ops API's job shape for the same id.
    const job = (await (
      await fetch(`${server.baseUrl}/ops/jobs/${id}`, { headers: { "x-api-key": server.apiKey } })
    ).json()) as Record<string, unknown>;
    expect(job).toMatchObject({ job_id: id, type: "install", status: "success" });
    expect((job.steps as Array<{ name: string; status: string }>).map((s) => `${s.name}:${s.status}`)).toEqual([
      "wait-for-release:success",
      "pull:success",
      "render-guard:success",
      "apply:success",
      "wait-ready:success",
      "record:success",
    ]);
    expect(JSON.stringify(job)).not.toContain("replicaCount");
    expect((job.params as Record<string, unknown>).values_sha256).toMatch(/^[0-9a-f]{64}$/);

    // The release is there, deployed by this operation.
    const { release } = await client.releases.getRelease({ namespace: ns, name: "web" });
    expect(release?.status).toBe(ReleaseStatus.DEPLOYED);
    expect(release?.operationId).toBe(id);
  });

  it("a synchronous call keeps its contract and carries the operation id (field and REST header)", async () => {
    const res = await fetch(`${server.baseUrl}/api/releases/${ns}/web`, {
      method: "PATCH",
      headers: { "content-type": "application/json", "x-api-key": server.apiKey },
      body: JSON.stringify({ values: { replicaCount: 1 } }),
    });
    expect(res.status).toBe(200);
    const release = (await res.json()) as Record<string, unknown>;
    expect(release.name).toBe("web");
    expect(release.revision).toBe(2);
    const id = res.headers.get("x-operation-id")!;
    const { operation } = await client.operations.getOperation({ id });
    expect(operation?.kind).toBe("upgrade");
    expect(operation?.state).toBe(OperationState.SUCCEEDED);
    const viaGrpc = await client.releases.getReleaseStatus({ namespace: ns, name: "web" });
    expect(viaGrpc.release?.operationId).toBe(id);
  });

  it("cancel while helm applies an install: helm gets SIGTERM, the release ends failed (never pending), the operation CANCELLED", async () => {
    const res = await client.releases.installRelease({
      namespace: ns,
      name: "slow",
      chart: CHART,
      version: VERSION,
      wait: true,
      values: { podAnnotations: { [KWOK_READY_DELAY]: "120s" } },
      async: true,
    });
    const id = res.operationId;
    await waitFor(
      "the wait-ready step",
      async () =>
        (await client.operations.getOperation({ id })).operation?.steps.some((s) => s.name === "wait-ready")
          ? true
          : undefined,
      60_000,
      100,
    );
    const { operation } = await client.operations.cancelOperation({ id });
    expect(operation?.state).toBe(OperationState.CANCELLED);
    expect(operation?.error?.code).toBe("CANCELLED");
    expect(operation?.error?.message).toMatch(/helm was sent SIGTERM; the release is now failed/);
    expect(operation?.steps.find((s) => s.name === "wait-ready")?.state).toBe(StepState.CANCELLED);
    const revisions = await helmRevisions(ns, "slow");
    expect(revisions.map((r) => r.status)).toEqual(["failed"]);
    expect(
      server.logs.some(
        (l) => l.msg === "helm install failed" && l.aborted === true && JSON.stringify(l.helm).includes(id),
      ),
    ).toBe(true);
  });

  it("cancel of an operation queued behind a slow upgrade: CANCELLED at once, its helm never ran", async () => {
    const slow = await client.releases.upgradeRelease({
      namespace: ns,
      name: "web",
      wait: true,
      values: { podAnnotations: { [KWOK_READY_DELAY]: "6s" } },
      async: true,
    });
    const queued = await client.releases.upgradeRelease({
      namespace: ns,
      name: "web",
      values: { "queued-marker": "yes" },
      async: true,
    });
    expect(queued.operation?.state).toBe(OperationState.QUEUED);
    const { operation } = await client.operations.cancelOperation({ id: queued.operationId });
    expect(operation?.state).toBe(OperationState.CANCELLED);
    const done = await client.operations.waitOperation({ id: slow.operationId, timeout: { seconds: 120n, nanos: 0 } });
    expect(done.operation?.state).toBe(OperationState.SUCCEEDED);
    const revisions = await helmRevisions(ns, "web");
    expect(revisions.map((r) => r.labels["paas-operation"])).not.toContain(queued.operationId);
    expect(revisions.at(-1)?.labels["paas-operation"]).toBe(slow.operationId);
    // helm's argv carries the operation's label: no helm run of the cancelled one ever started.
    expect(
      server.logs.some((l) => l.msg === "helm upgrade started" && JSON.stringify(l.helm).includes(queued.operationId)),
    ).toBe(false);
    expect(
      server.logs.some((l) => l.msg === "helm upgrade started" && JSON.stringify(l.helm).includes(slow.operationId)),
    ).toBe(true);
  });

  it("a rollback whose helm has started cannot be cancelled: FAILED_PRECONDITION, and it ends deployed", async () => {
    let refused = false;
    for (let attempt = 0; attempt < 5 && !refused; attempt++) {
      const res = await client.releases.rollbackRelease({ namespace: ns, name: "web", async: true });
      await waitFor(
        "helm to start",
        async () =>
          (await client.operations.getOperation({ id: res.operationId })).operation?.steps.some(
            (s) => s.name === "apply",
          )
            ? true
            : undefined,
        30_000,
        10,
      );
      const err = await failure(client.operations.cancelOperation({ id: res.operationId }));
      expect(err.code).toBe(Code.FailedPrecondition);
      refused = /cannot be stopped/.test(err.rawMessage);
      const done = await client.operations.waitOperation({ id: res.operationId, timeout: { seconds: 60n, nanos: 0 } });
      expect(done.operation?.state).toBe(OperationState.SUCCEEDED);
    }
    expect(refused).toBe(true);
    expect((await helmRevisions(ns, "web")).at(-1)?.status).toBe("deployed");
  });

  it("bad input: unknown id NOT_FOUND (REST 404), cancel of an ended operation FAILED_PRECONDITION, an async retry with the same key the same operation", async () => {
    const unknown = newOperationId();
    expect((await failure(client.operations.getOperation({ id: unknown }))).code).toBe(Code.NotFound);
    const rest = await fetch(`${server.baseUrl}/api/operations/${unknown}`, {
      headers: { "x-api-key": server.apiKey },
    });
    expect(rest.status).toBe(404);
    const job = await fetch(`${server.baseUrl}/ops/jobs/${unknown}`, { headers: { "x-api-key": server.apiKey } });
    expect(job.status).toBe(404);
    const events = await fetch(`${server.baseUrl}/api/operations/${unknown}/events`, {
      headers: { "x-api-key": server.apiKey },
    });
    expect(events.status).toBe(404);
    expect(((await events.json()) as { error_type: string }).error_type).toBe("not_found");

    const req = {
      namespace: ns,
      name: "web",
      values: { "retry-marker": "1" },
      async: true,
      idempotencyKey: `erp-${unknown}`,
    };
    const first = await client.releases.upgradeRelease(req);
    const retry = await client.releases.upgradeRelease(req);
    expect(retry.operationId).toBe(first.operationId);
    await client.operations.waitOperation({ id: first.operationId });
    const cancel = await fetch(`${server.baseUrl}/api/operations/${first.operationId}/cancel`, {
      method: "POST",
      headers: { "x-api-key": server.apiKey, "content-type": "application/json" },
      body: "{}",
    });
    expect(cancel.status).toBe(400);
    expect(((await cancel.json()) as { error_type: string }).error_type).toBe("failed_precondition");
    const ops = byOperation(await allAuditEvents(auditClient(server.baseUrl, server.apiKey), ns));
    expect(ops.get(first.operationId)?.outcomes).toHaveLength(1);
    expect(
      (await helmRevisions(ns, "web")).filter((r) => r.labels["paas-operation"] === first.operationId),
    ).toHaveLength(1);
  });
});
