import { loadAll, YAML11_SCHEMA } from "js-yaml";
import { podSecurityViolations, podSpecOf, type PssLevel } from "./pod-security.ts";

// The render guard: checks a chart's rendered manifests before helm applies any of them,
// inside the same helm run (helm's post-renderer, see post-renderer.ts). It is the second
// layer: helm runs as the namespace's deployer ServiceAccount, whose RBAC (and Pod
// Security Admission) is the boundary. The guard turns what RBAC would refuse halfway
// through an install into a refusal before anything exists, with a message that names
// the object.
//
// This module is loaded by a separate, short-lived node process (render-guard-main.ts):
// it imports nothing but js-yaml and pod-security.ts.

/** GuardPolicy is what the guard checks against; written by the service for each helm run. */
export interface GuardPolicy {
  /** The release's namespace: every object must be in it. */
  namespace: string;
  /** "apiVersion/Kind" → namespaced?, from the API server's discovery. A kind not listed is not served. */
  scopes: Record<string, boolean>;
  /** The namespace's enforced Pod Security level: pod templates are checked against it. */
  podSecurity?: PssLevel;
  /** Objects the platform manages in the namespace, "group/Kind" → names: a chart may not bring them. */
  reserved?: Record<string, string[]>;
  /** Kinds ("group/Kind") removed from the chart's output instead of applied. */
  drop?: string[];
}

/** GuardObject names one object of the chart. */
export interface GuardObject {
  apiVersion: string;
  kind: string;
  name: string;
  /** metadata.namespace as the chart wrote it ("" when unset: helm puts it in the release's namespace). */
  namespace: string;
  /** The helm.sh/hook annotation, for hooks. */
  hook?: string;
}

/** GuardFinding is an object the guard refuses, and why. */
export interface GuardFinding extends GuardObject {
  reason: string;
}

/** GuardResult is the verdict on one rendered stream. */
export interface GuardResult {
  /** What helm applies: the input minus dropped documents, byte for byte otherwise. */
  output: string;
  refused: GuardFinding[];
  dropped: GuardObject[];
  /** A kind was not in the policy's scopes: discovery may be stale. */
  unknownKind: boolean;
}

const CRD = "apiextensions.k8s.io/CustomResourceDefinition";
const MAX_VIOLATIONS_SHOWN = 3;
// v4 refuses an empty post-renderer output; a comment is "no objects" to both v3 and v4.
const EMPTY_OUTPUT = "# paas-render-guard: no objects\n";

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** groupOf returns the API group of an apiVersion ("" for the core group). */
export function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf("/");
  return slash < 0 ? "" : apiVersion.slice(0, slash);
}

/** splitDocuments cuts a YAML stream before every "---" document marker, keeping each chunk's text as is. */
export function splitDocuments(stream: string): string[] {
  return stream.split(/^(?=---(?:[ \t]|\r?$))/m);
}

/**
 * guardManifests checks every object of a rendered YAML stream (kind List is looked into)
 * and returns the stream to apply with the verdict. It fails closed: text it cannot read
 * as one object per document is refused, since helm might read it differently.
 */
export function guardManifests(stream: string, policy: GuardPolicy): GuardResult {
  const refused: GuardFinding[] = [];
  const dropped: GuardObject[] = [];
  const kept: string[] = [];
  let objectsKept = 0;
  let unknownKind = false;
  const drop = new Set(policy.drop ?? []);

  const refuse = (o: GuardObject, reason: string) => refused.push({ ...o, reason });
  const unreadable = (reason: string) => refuse({ apiVersion: "", kind: "document", name: "", namespace: "" }, reason);

  // Returns true when the object is to be dropped.
  const check = (doc: unknown, inList: boolean): boolean => {
    if (!isObj(doc)) {
      unreadable("a rendered document is not a Kubernetes object");
      return false;
    }
    const meta = isObj(doc["metadata"]) ? doc["metadata"] : {};
    const annotations = isObj(meta["annotations"]) ? meta["annotations"] : {};
    const o: GuardObject = {
      apiVersion: typeof doc["apiVersion"] === "string" ? doc["apiVersion"] : "",
      kind: typeof doc["kind"] === "string" ? doc["kind"] : "",
      name:
        typeof meta["name"] === "string"
          ? meta["name"]
          : typeof meta["generateName"] === "string"
            ? `${meta["generateName"]}*`
            : "",
      namespace: typeof meta["namespace"] === "string" ? meta["namespace"] : "",
      ...(typeof annotations["helm.sh/hook"] === "string" ? { hook: annotations["helm.sh/hook"] } : {}),
    };
    if (!o.apiVersion || !o.kind) {
      refuse(o, "it has no apiVersion or kind");
      return false;
    }
    if (meta["namespace"] !== undefined && typeof meta["namespace"] !== "string") {
      refuse(o, "its metadata.namespace is not a string");
      return false;
    }
    const gk = `${groupOf(o.apiVersion)}/${o.kind}`;
    // helm applies the items of a List one by one (the resource builder flattens it).
    if (o.apiVersion === "v1" && o.kind === "List") {
      const items = Array.isArray(doc["items"]) ? doc["items"] : [];
      for (const item of items) {
        if (check(item, true))
          refuse(describeOf(item), "the platform removes this kind from charts, which cannot be done inside a List");
      }
      return false;
    }
    if (gk === CRD) {
      refuse(o, "CustomResourceDefinitions are cluster-wide: the platform installs them, not a tenant release");
      return false;
    }
    const namespaced = policy.scopes[`${o.apiVersion}/${o.kind}`];
    if (namespaced === undefined) {
      unknownKind = true;
      refuse(
        o,
        `the cluster does not serve kind ${o.kind} in ${o.apiVersion} (is its CustomResourceDefinition installed?)`,
      );
      return false;
    }
    if (!namespaced) {
      refuse(
        o,
        `${o.kind} is cluster-scoped: a release may only create objects in its own namespace "${policy.namespace}"`,
      );
      return false;
    }
    if (o.namespace !== "" && o.namespace !== policy.namespace) {
      refuse(
        o,
        `it is in namespace "${o.namespace}": a release may only create objects in its own namespace "${policy.namespace}"`,
      );
      return false;
    }
    if (drop.has(gk)) {
      if (!inList) dropped.push(o);
      return true;
    }
    if ((policy.reserved?.[gk] ?? []).includes(o.name)) {
      refuse(o, `${o.kind} "${o.name}" is managed by the platform in every tenant namespace`);
      return false;
    }
    // Test hooks only run on `helm test`, which this service does not offer.
    const testHook = (o.hook ?? "").split(",").some((h) => h.trim().startsWith("test"));
    const pod = policy.podSecurity && !testHook ? podSpecOf(doc) : undefined;
    if (pod) {
      const v = podSecurityViolations(pod.spec, pod.meta, policy.podSecurity!);
      if (v.length > 0) {
        const more = v.length > MAX_VIOLATIONS_SHOWN ? ` (and ${v.length - MAX_VIOLATIONS_SHOWN} more)` : "";
        refuse(
          o,
          `its pods violate the namespace's Pod Security level "${policy.podSecurity}": ${v.slice(0, MAX_VIOLATIONS_SHOWN).join("; ")}${more}`,
        );
      }
    }
    return false;
  };

  for (const chunk of splitDocuments(stream)) {
    let docs: unknown[];
    try {
      docs = loadAll(chunk, { schema: YAML11_SCHEMA }).filter((d) => d !== null && d !== undefined);
    } catch {
      unreadable("the rendered manifests are not valid YAML");
      continue;
    }
    if (docs.length > 1) {
      unreadable("the rendered manifests hold a YAML document without its own --- marker");
      continue;
    }
    if (docs.length === 1 && check(docs[0], false)) continue;
    kept.push(chunk);
    objectsKept += docs.length;
  }
  let output = kept.join("");
  if (objectsKept === 0)
    output = output.trim() === "" ? EMPTY_OUTPUT : `${output}${output.endsWith("\n") ? "" : "\n"}${EMPTY_OUTPUT}`;
  return { output, refused, dropped, unknownKind };
}

function describeOf(doc: unknown): GuardObject {
  const d = isObj(doc) ? doc : {};
  const meta = isObj(d["metadata"]) ? d["metadata"] : {};
  return {
    apiVersion: String(d["apiVersion"] ?? ""),
    kind: String(d["kind"] ?? ""),
    name: String(meta["name"] ?? ""),
    namespace: String(meta["namespace"] ?? ""),
  };
}

// Names come from the chart: keep them printable and short in messages.
function clean(s: string, max = 120): string {
  const printable = s.replace(/[\u0000-\u001f\u007f]/g, "?");
  return printable.length > max ? `${printable.slice(0, max - 3)}...` : printable;
}

/** describeFinding is the caller-facing sentence for one refused object. */
export function describeFinding(f: GuardFinding): string {
  if (f.kind === "document") return clean(f.reason, 300);
  const where = f.namespace ? ` in namespace "${clean(f.namespace, 63)}"` : "";
  const hook = f.hook ? ` (${clean(f.hook, 60)} hook)` : "";
  return `${clean(f.kind, 63)} "${clean(f.name || "(unnamed)")}"${where}${hook}: ${clean(f.reason, 600)}`;
}

/** describeRefusal is the message for a refused chart: the first finding, and how many more. */
export function describeRefusal(refused: GuardFinding[]): string {
  if (refused.length === 0) return "";
  const more = refused.length > 1 ? ` (and ${refused.length - 1} more object${refused.length > 2 ? "s" : ""})` : "";
  return `${describeFinding(refused[0]!)}${more}`;
}
