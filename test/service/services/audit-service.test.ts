import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { beforeEach, describe, expect, it } from "vitest";
import { AuditOutcome, AuditStage } from "../../../gen/paas/v1/audit_pb.js";
import { PaasError } from "../../../src/errors.ts";
import { failure } from "../../support/failure.ts";
import { auditRecord, createAuditTestApp, MemoryAuditStore } from "../../support/memory-audit-store.ts";

// paas.v1.AuditService/ListAuditEvents on an in-memory store, behind the app's interceptors.

const PREFIX = "paas-ws-";
const ADMIN = "admin-key-0123456789abcdef";
const READER_A = "reader-a-0123456789abcdef";
const TEAM = "team-reader-0123456789abcdef";
const STAR = "star-reader-0123456789abcdef";
const DEPLOYER = "deployer-a-0123456789abcdef";

const KEYS = [
  { id: "reader-a", key: READER_A, namespaces: ["paas-ws-a"], verbs: ["read" as const] },
  { id: "team", key: TEAM, namespaces: ["paas-ws-team-*"], verbs: ["read" as const] },
  { id: "star", key: STAR, namespaces: ["*"], verbs: ["read" as const] },
  { id: "deployer-a", key: DEPLOYER, namespaces: ["paas-ws-a"], verbs: ["deploy" as const] },
];

const T0 = Date.parse("2026-03-01T00:00:00Z");
const at = (minutes: number) => new Date(T0 + minutes * 60_000);

let store: MemoryAuditStore;
let app: ReturnType<typeof createAuditTestApp>;

beforeEach(() => {
  store = new MemoryAuditStore();
  app = createAuditTestApp({ store, prefix: PREFIX, adminKey: ADMIN, keys: KEYS });
  // One record per namespace, a minute apart; the oldest first.
  const namespaces = ["paas-ws-a", "paas-ws-b", "paas-ws-team-x", "paas-ws-team-y", "", "kube-system", "paas-ws-a"];
  namespaces.forEach((namespace, i) =>
    store.records.push(
      auditRecord({
        id: `id-${i}`,
        time: at(i),
        namespace,
        caller: i % 2 === 0 ? "key-even" : "key-odd",
        release: i < 3 ? "web" : "db",
      }),
    ),
  );
});

const list = (key: string | null, req: Parameters<ReturnType<typeof app.client>["listAuditEvents"]>[0] = {}) =>
  app.client(key).listAuditEvents(req);
const ids = (events: { id: string }[]) => events.map((e) => e.id);

describe("ListAuditEvents for an unrestricted key", () => {
  it("returns every record newest first, with the default page size and no visibility limit", async () => {
    const res = await list(ADMIN);
    expect(ids(res.events)).toEqual(["id-6", "id-5", "id-4", "id-3", "id-2", "id-1", "id-0"]);
    expect(res.nextPageToken).toBe("");
    expect(store.queries.at(-1)).toEqual({ pageSize: 100 });
  });

  it("pages through three pages without gaps or repeats", async () => {
    const first = await list(ADMIN, { pageSize: 3 });
    expect(ids(first.events)).toEqual(["id-6", "id-5", "id-4"]);
    expect(first.nextPageToken).not.toBe("");
    const second = await list(ADMIN, { pageSize: 3, pageToken: first.nextPageToken });
    expect(ids(second.events)).toEqual(["id-3", "id-2", "id-1"]);
    expect(second.nextPageToken).not.toBe("");
    const third = await list(ADMIN, { pageSize: 3, pageToken: second.nextPageToken });
    expect(ids(third.events)).toEqual(["id-0"]);
    expect(third.nextPageToken).toBe("");
    expect(store.queries.map((q) => q.pageToken)).toEqual([undefined, first.nextPageToken, second.nextPageToken]);
  });

  it("passes every filter to the store: since inclusive, until exclusive", async () => {
    const res = await list(ADMIN, {
      namespace: "paas-ws-a",
      release: "web",
      caller: "key-even",
      operationId: "op-x",
      since: timestampFromDate(at(0)),
      until: timestampFromDate(at(6)),
      pageSize: 5,
    });
    expect(store.queries.at(-1)).toEqual({
      namespace: "paas-ws-a",
      release: "web",
      caller: "key-even",
      operationId: "op-x",
      since: at(0),
      until: at(6),
      pageSize: 5,
    });
    expect(res.events).toEqual([]);
    expect(ids((await list(ADMIN, { namespace: "paas-ws-a" })).events)).toEqual(["id-6", "id-0"]);
    expect(ids((await list(ADMIN, { release: "db", caller: "key-odd" })).events)).toEqual(["id-5", "id-3"]);
    expect(
      ids((await list(ADMIN, { since: timestampFromDate(at(2)), until: timestampFromDate(at(4)) })).events),
    ).toEqual(["id-3", "id-2"]);
    // An empty range is no error.
    expect((await list(ADMIN, { since: timestampFromDate(at(2)), until: timestampFromDate(at(2)) })).events).toEqual(
      [],
    );
  });

  it("may filter by a namespace outside the prefix: denied attempts there are records too", async () => {
    expect(ids((await list(ADMIN, { namespace: "kube-system" })).events)).toEqual(["id-5"]);
  });

  it("maps each record field to the event", async () => {
    store.records.length = 0;
    store.records.push(
      auditRecord({
        id: "o1",
        time: new Date("2026-03-02T10:00:00.123Z"),
        stage: "outcome",
        outcome: "failed",
        operationId: "op-1",
        durationMs: 1234,
        revisionBefore: 2,
        revisionAfter: 3,
        errorCode: "failed_precondition",
        errorMessage: "no",
        idempotencyKey: "k1",
        valuesSha256: "ab",
        sourceIp: "10.1.1.1",
        userAgent: "ua",
        replica: "r1",
        requestId: "rq",
      }),
    );
    const [e] = (await list(ADMIN)).events;
    expect(e).toMatchObject({
      id: "o1",
      stage: AuditStage.OUTCOME,
      outcome: AuditOutcome.FAILED,
      operationId: "op-1",
      durationMs: 1234n,
      revisionBefore: 2,
      revisionAfter: 3,
      errorCode: "failed_precondition",
      errorMessage: "no",
      idempotencyKey: "k1",
      valuesSha256: "ab",
      sourceIp: "10.1.1.1",
      userAgent: "ua",
      replica: "r1",
      requestId: "rq",
      namespace: "paas-ws-a",
      release: "web",
      caller: "key-0001",
      method: "paas.v1.ReleaseService/InstallRelease",
      chartReference: "oci://r.example/c/nginx",
      chartVersion: "1.0.0",
    });
    expect(timestampDate(e!.time!).toISOString()).toBe("2026-03-02T10:00:00.123Z");
  });
});

describe("ListAuditEvents refuses bad requests", () => {
  it("page_size: 0 is the default, 1..1000 pass, anything else is INVALID_ARGUMENT before the store is asked", async () => {
    await list(ADMIN, { pageSize: 1000 });
    expect(store.queries.at(-1)?.pageSize).toBe(1000);
    store.queries.length = 0;
    for (const pageSize of [1001, -1, 2 ** 31 - 1]) {
      const err = await failure(list(ADMIN, { pageSize }));
      expect(err.code, String(pageSize)).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toMatch(/page_size must be between 1 and 1000/);
    }
    expect(store.queries).toEqual([]);
  });

  it("since after until is INVALID_ARGUMENT", async () => {
    const err = await failure(list(ADMIN, { since: timestampFromDate(at(5)), until: timestampFromDate(at(4)) }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("since must not be after until");
    expect(store.queries).toEqual([]);
  });

  it("a timestamp no Date can hold is INVALID_ARGUMENT", async () => {
    const err = await failure(list(ADMIN, { since: { seconds: 10n ** 15n, nanos: 0 } }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("since is not a valid time");
  });

  it("a malformed page token is the store's INVALID_ARGUMENT, passed through", async () => {
    const err = await failure(list(ADMIN, { pageToken: "not-a-token" }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("page_token is malformed");
  });

  it("an unreachable store is UNAVAILABLE with the store's message", async () => {
    store.failWith = new PaasError("unavailable", "audit store unreachable");
    const err = await failure(list(ADMIN));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toBe("audit store unreachable");
  });

  it("no key is UNAUTHENTICATED; a key without the read verb is PERMISSION_DENIED", async () => {
    expect((await failure(list(null))).code).toBe(Code.Unauthenticated);
    const err = await failure(list(DEPLOYER));
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.rawMessage).toMatch(/lacks the "read" verb/);
    expect(store.queries).toEqual([]);
  });
});

describe("ListAuditEvents for scoped keys", () => {
  it("an exact pattern sees only its namespace, filtered by the store", async () => {
    const res = await list(READER_A);
    expect(ids(res.events)).toEqual(["id-6", "id-0"]);
    expect(store.queries.at(-1)?.visibility).toEqual({ exact: ["paas-ws-a"], prefixes: [] });
  });

  it("a prefix pattern sees the namespaces it matches, and pages within them", async () => {
    const first = await list(TEAM, { pageSize: 1 });
    expect(ids(first.events)).toEqual(["id-3"]);
    const second = await list(TEAM, { pageSize: 1, pageToken: first.nextPageToken });
    expect(ids(second.events)).toEqual(["id-2"]);
    expect(second.nextPageToken).toBe("");
    expect(store.queries.at(-1)?.visibility).toEqual({ exact: [], prefixes: ["paas-ws-team-"] });
  });

  it('"*" without every verb sees the namespaces under the prefix, not records without a namespace or outside it', async () => {
    const res = await list(STAR);
    expect(ids(res.events)).toEqual(["id-6", "id-3", "id-2", "id-1", "id-0"]);
    expect(store.queries.at(-1)?.visibility).toEqual({ exact: [], prefixes: [PREFIX] });
  });

  it("a namespace filter inside the scope narrows the answer", async () => {
    expect(ids((await list(TEAM, { namespace: "paas-ws-team-y" })).events)).toEqual(["id-3"]);
  });

  it("a namespace filter outside the scope is PERMISSION_DENIED, whether the namespace exists, has records or is outside the prefix", async () => {
    for (const [key, namespace] of [
      [READER_A, "paas-ws-b"],
      [READER_A, "paas-ws-never-created"],
      [TEAM, "paas-ws-a"],
      [STAR, "kube-system"],
      [READER_A, "Not A Name"],
    ] as const) {
      const err = await failure(list(key, { namespace }));
      expect(err.code, `${key} ${namespace}`).toBe(Code.PermissionDenied);
      expect(err.rawMessage).toMatch(/is outside this API key's scope$/);
    }
    expect(store.queries).toEqual([]);
  });
});
