import {
  getOption,
  hasOption,
  ScalarType,
  type DescField,
  type DescMessage,
  type DescMethod,
  type DescService,
  type MessageShape,
} from "@bufbuild/protobuf";
import type { JsonValue } from "../domain/release.ts";
import { http } from "../../gen/google/api/annotations_pb.js";
import type { HttpRule } from "../../gen/google/api/http_pb.js";
import { AuditService } from "../../gen/paas/v1/audit_pb.js";
import { WebhookService } from "../../gen/paas/v1/webhook_pb.js";
import { NamespaceService } from "../../gen/paas/v1/namespace_pb.js";
import { ReleaseService } from "../../gen/paas/v1/release_pb.js";
import { OperationService } from "../../gen/paas/v1/operation_pb.js";
import {
  DeletePersistentVolumeClaimResponseSchema,
  DeletePodResponseSchema,
  ListWorkloadsResponseSchema,
  RestartWorkloadResponseSchema,
  ScaleWorkloadResponseSchema,
  WorkloadService,
} from "../../gen/paas/v1/workload_pb.js";
import { assertQuerySupported, queryNamesOf } from "./query.ts";
import {
  orNull,
  restAuditEvent,
  restJob,
  restJobAccepted,
  restMessage,
  restNamespace,
  restOperation,
  restPod,
  restRelease,
  restRevision,
  restWebhookDeliveries,
  restWebhookRedelivered,
  restWebhookSubscriptions,
} from "./shapes.ts";

/** Verb is an HTTP method the route table can bind. */
export type Verb = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** Segment is one piece of a path template: a literal, or a variable bound to a request field. */
export type Segment = { literal: string } | { field: DescField };

/** RestRoute is one REST binding of a unary RPC. */
export interface RestRoute {
  verb: Verb;
  /** The template as written in the proto, e.g. "/api/releases/{namespace}/{name}". */
  template: string;
  segments: Segment[];
  method: DescMethod;
  /** Fields read from the JSON body (every field not bound in the path when the rule says body: "*"). */
  bodyFields: DescField[];
  /** Whether the route reads a JSON body at all. */
  hasBody: boolean;
  /**
   * Fields read from the query string (gRPC transcoding: on a route without a body, every
   * field not bound in the path), by proto name and by lowerCamel JSON name.
   */
  queryFields: Map<string, DescField>;
  /** Body fields that must be present (pydantic's required fields → 422 when missing). */
  required: Set<string>;
  /** Success status. */
  status: number;
  /**
   * The request names its namespace in the body, not the path; a namespace outside the prefix
   * is then a validation error (400) rather than a forbidden path (403). See errors.ts.
   */
  targetInBody: boolean;
  /** Renders the RPC's response in the old operator's JSON. */
  response: (message: never) => JsonValue;
  /** The route always runs asynchronously (as if `Prefer: respond-async` were sent) and answers with `response`. */
  forceAsync: boolean;
}

/** Override adapts one annotated RPC to the old operator's REST shape. */
interface Override<O extends DescMessage> {
  status?: number;
  required?: string[];
  response: (message: MessageShape<O>) => JsonValue;
  /** Another shape for one binding (by its template), e.g. an additional binding for older callers. */
  byTemplate?: Record<string, (message: MessageShape<O>) => JsonValue>;
  /** Always asynchronous, answered by `response` (the ops API's job start: {job_id}). */
  forceAsync?: boolean;
}

type AnyOverride = Override<DescMessage>;

function override<M extends DescMethod>(method: M, o: Override<M["output"]>): [DescMethod, AnyOverride] {
  return [method, o as unknown as AnyOverride];
}

const R = ReleaseService.method;
const N = NamespaceService.method;
const A = AuditService.method;
const O = OperationService.method;
const W = WorkloadService.method;
const WH = WebhookService.method;

/**
 * Per-RPC adaptations to the old operator. Paths, verbs and body mapping come from the
 * protos' google.api.http annotations; only the success status, the required body fields and
 * the response shape are stated here.
 */
export const OVERRIDES = new Map<DescMethod, AnyOverride>([
  override(R.installRelease, {
    status: 201,
    required: ["namespace", "name", "chart"],
    response: (m) => restRelease(m.release),
  }),
  override(R.getRelease, { response: (m) => restRelease(m.release) }),
  override(R.upgradeRelease, { response: (m) => restRelease(m.release) }),
  override(R.uninstallRelease, { response: (m) => ({ message: m.message }) }),
  override(R.rollbackRelease, { response: (m) => ({ message: m.message, release: restRelease(m.release) }) }),
  override(R.listReleaseRevisions, { response: (m) => ({ revisions: m.revisions.map(restRevision) }) }),
  override(R.getReleaseStatus, {
    response: (m) => ({
      release: restRelease(m.release),
      pods: m.pods.map(restPod),
      pod_retrieval_error: orNull(m.podRetrievalError),
    }),
  }),
  override(R.listReleases, { response: (m) => ({ releases: m.releases.map((r) => restRelease(r)) }) }),
  override(R.recoverRelease, {
    response: (m) => ({ release: restRelease(m.release), recovered: m.recovered, message: m.message }),
  }),
  override(N.createNamespace, {
    status: 201,
    required: ["name"],
    response: (m) => ({ message: m.message, created: m.created, namespace: restNamespace(m.namespace) }),
  }),
  override(N.getNamespace, { response: (m) => restNamespace(m.namespace) }),
  override(N.listNamespaces, { response: (m) => ({ namespaces: m.namespaces.map((n) => restNamespace(n)) }) }),
  override(N.deleteNamespace, { response: (m) => ({ message: m.message }) }),
  // No old shape: the response message's JSON with proto field names (restAuditEvent).
  override(A.listAuditEvents, {
    response: (m) => ({ events: m.events.map(restAuditEvent), next_page_token: m.nextPageToken }),
  }),
  // No old shape either (restOperation), except the ops API's job shape at /ops/jobs/{id}.
  override(O.getOperation, {
    response: (m) => restOperation(m.operation),
    byTemplate: { "/ops/jobs/{id}": (m) => restJob(m.operation) },
  }),
  override(O.listOperations, {
    response: (m) => ({ operations: m.operations.map((o) => restOperation(o)), next_page_token: m.nextPageToken }),
  }),
  override(O.waitOperation, { response: (m) => restOperation(m.operation) }),
  override(O.cancelOperation, { response: (m) => restOperation(m.operation) }),
  // The ops API's paths: the response messages with proto field names (restMessage); the
  // rebuild starts a job and answers {job_id, status} at once (GET /ops/jobs/{job_id} follows it).
  override(W.listWorkloads, { response: (m) => restMessage(ListWorkloadsResponseSchema, m) }),
  override(W.scaleWorkload, { required: ["replicas"], response: (m) => restMessage(ScaleWorkloadResponseSchema, m) }),
  override(W.restartWorkload, { response: (m) => restMessage(RestartWorkloadResponseSchema, m) }),
  override(W.deletePod, { response: (m) => restMessage(DeletePodResponseSchema, m) }),
  override(W.deletePersistentVolumeClaim, {
    response: (m) => restMessage(DeletePersistentVolumeClaimResponseSchema, m),
  }),
  override(W.rebuildStatefulSetMember, {
    status: 202,
    required: ["namespace", "statefulset", "ordinal"],
    forceAsync: true,
    response: (m) => restJobAccepted(m),
  }),
  // No old shape: the response messages' JSON with proto field names (src/rest/shapes.ts).
  override(WH.listWebhookSubscriptions, { response: (m) => restWebhookSubscriptions(m) }),
  override(WH.listWebhookDeliveries, { response: (m) => restWebhookDeliveries(m) }),
  override(WH.redeliverWebhook, { response: (m) => restWebhookRedelivered(m) }),
]);

/** The services whose annotated RPCs are served as REST. */
export const REST_SERVICES: DescService[] = [
  ReleaseService,
  NamespaceService,
  OperationService,
  AuditService,
  WorkloadService,
  WebhookService,
];

/**
 * buildRoutes reads the google.api.http annotations of the services and returns the route
 * table. Anything it cannot serve faithfully (a template or body field kind it does not
 * know, an annotated RPC without a response shape) fails at start, not at request time.
 */
export function buildRoutes(
  services: DescService[] = REST_SERVICES,
  overrides: Map<DescMethod, AnyOverride> = OVERRIDES,
): RestRoute[] {
  const routes: RestRoute[] = [];
  const used = new Set<DescMethod>();
  for (const service of services) {
    for (const method of service.methods) {
      if (!hasOption(method, http)) continue;
      if (method.methodKind !== "unary")
        throw new Error(`REST: ${method} is ${method.methodKind}; only unary RPCs can be annotated`);
      const o = overrides.get(method);
      if (!o)
        throw new Error(`REST: ${method} has a google.api.http annotation but no response shape in src/rest/routes.ts`);
      used.add(method);
      const rule = getOption(method, http);
      for (const binding of [rule, ...rule.additionalBindings]) routes.push(toRoute(method, binding, o));
    }
  }
  for (const method of overrides.keys()) {
    if (services.includes(method.parent) && !used.has(method))
      throw new Error(`REST: ${method} has a REST shape but no google.api.http annotation`);
  }
  const seen = new Set<string>();
  for (const r of routes) {
    const key = `${r.verb} ${r.segments.map((s) => ("literal" in s ? s.literal : "{}")).join("/")}`;
    if (seen.has(key)) throw new Error(`REST: two RPCs bind ${key}`);
    seen.add(key);
  }
  return routes;
}

function toRoute(method: DescMethod, rule: HttpRule, o: AnyOverride): RestRoute {
  const { verb, template } = verbAndTemplate(method, rule);
  const segments = parseTemplate(method, template);
  const pathFields = new Set(segments.flatMap((s) => ("field" in s ? [s.field] : [])));
  if (rule.body !== "" && rule.body !== "*")
    throw new Error(`REST: ${method}: body "${rule.body}" is not supported (only "*" or none)`);
  const hasBody = rule.body === "*";
  const bodyFields = hasBody ? method.input.fields.filter((f) => !pathFields.has(f)) : [];
  for (const f of bodyFields) assertSupported(method, f);
  // gRPC transcoding: without a body, the fields the path does not bind come from the query.
  const queryFields = hasBody ? [] : method.input.fields.filter((f) => !pathFields.has(f));
  for (const f of queryFields) assertQuerySupported(method, f);
  const required = new Set(o.required ?? []);
  for (const name of required) {
    if (!bodyFields.some((f) => f.name === name))
      throw new Error(`REST: ${method}: required field "${name}" is not a body field`);
  }
  return {
    verb,
    template,
    segments,
    method,
    bodyFields,
    hasBody,
    queryFields: queryNamesOf(queryFields),
    required,
    status: o.status ?? 200,
    targetInBody: hasBody && pathFields.size === 0,
    response: (o.byTemplate?.[template] ?? o.response) as (message: never) => JsonValue,
    forceAsync: o.forceAsync ?? false,
  };
}

function verbAndTemplate(method: DescMethod, rule: HttpRule): { verb: Verb; template: string } {
  switch (rule.pattern.case) {
    case "get":
      return { verb: "GET", template: rule.pattern.value };
    case "post":
      return { verb: "POST", template: rule.pattern.value };
    case "put":
      return { verb: "PUT", template: rule.pattern.value };
    case "patch":
      return { verb: "PATCH", template: rule.pattern.value };
    case "delete":
      return { verb: "DELETE", template: rule.pattern.value };
    default:
      throw new Error(`REST: ${method}: HTTP rule pattern "${rule.pattern.case}" is not supported`);
  }
}

const VARIABLE = /^\{([a-z_][a-z0-9_]*)(=\*)?\}$/;
const LITERAL = /^[A-Za-z0-9._~-]+$/;

function parseTemplate(method: DescMethod, template: string): Segment[] {
  if (!template.startsWith("/")) throw new Error(`REST: ${method}: template "${template}" must start with "/"`);
  return template
    .slice(1)
    .split("/")
    .map((part) => {
      const v = VARIABLE.exec(part);
      if (v) {
        const field = method.input.fields.find((f) => f.name === v[1]);
        if (!field || field.fieldKind !== "scalar" || field.scalar !== ScalarType.STRING) {
          throw new Error(
            `REST: ${method}: path variable {${v[1]}} must name a string field of ${method.input.typeName}`,
          );
        }
        return { field };
      }
      if (!LITERAL.test(part)) throw new Error(`REST: ${method}: template segment "${part}" is not supported`);
      return { literal: part };
    });
}

const SUPPORTED_MESSAGES = new Set(["google.protobuf.Struct", "google.protobuf.Duration"]);
const SUPPORTED_SCALARS = new Set([
  ScalarType.STRING,
  ScalarType.BOOL,
  ScalarType.INT32,
  ScalarType.SINT32,
  ScalarType.SFIXED32,
  ScalarType.UINT32,
  ScalarType.FIXED32,
]);

function assertSupported(method: DescMethod, f: DescField): void {
  const ok =
    (f.fieldKind === "scalar" && SUPPORTED_SCALARS.has(f.scalar)) ||
    f.fieldKind === "enum" ||
    (f.fieldKind === "message" && SUPPORTED_MESSAGES.has(f.message.typeName));
  if (!ok) throw new Error(`REST: ${method}: body field ${f.name} has a kind the REST decoder does not support`);
}

/** RouteMatch is the outcome of matching a path: the route for the verb, and every verb the path allows. */
export interface RouteMatch {
  route?: RestRoute;
  params: Map<DescField, string>;
  allowed: Verb[];
}

/**
 * matchRoute matches already-split, already-decoded path segments. A variable matches one
 * non-empty segment; when several templates match, the one with more literal segments wins.
 */
export function matchRoute(routes: RestRoute[], verb: string, segments: string[]): RouteMatch | undefined {
  const candidates = routes.filter(
    (r) =>
      r.segments.length === segments.length &&
      r.segments.every((s, i) => ("literal" in s ? s.literal === segments[i] : segments[i] !== "")),
  );
  if (candidates.length === 0) return undefined;
  const literals = (r: RestRoute) => r.segments.filter((s) => "literal" in s).length;
  const allowed = [...new Set(candidates.map((r) => r.verb))];
  const effective = verb === "HEAD" ? "GET" : verb;
  const route = candidates.filter((r) => r.verb === effective).sort((a, b) => literals(b) - literals(a))[0];
  const params = new Map<DescField, string>();
  if (route) route.segments.forEach((s, i) => "field" in s && params.set(s.field, segments[i]!));
  return { route, params, allowed };
}
