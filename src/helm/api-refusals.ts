// The Kubernetes API server's refusals of a chart's objects, as helm v3 and v4 print them
// (recorded in test/fixtures/helm/v{3,4}/stderr/). What goes into a caller's message is only
// what names the object and the fields: kinds, object names and field paths, each checked
// against a narrow character set; values (quoted after "Invalid value:", "Unsupported value:",
// …) never do. helm-errors.ts decides the error kind; these build the message's tail.

/**
 * OBJECT_INVALID matches:
 *  - validation: `Deployment.apps "web" is invalid: spec.template.annotations: Invalid value: "…": …`;
 *  - v4 server-side apply: `failed to create typed patch object (ns/web; apps/v1, Kind=Deployment): .spec.replicas: expected numeric (int or float), got string`;
 *  - v3 decoding: `Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32`.
 */
export const OBJECT_INVALID =
  /\b[A-Z]\w*(?:\.[\w.-]+)? "[^"\n]*" is invalid: |failed to create typed patch object \(|\b[A-Z]\w* in version "[^"\n]*" cannot be handled as a /;
/** `configmaps "web-cm" already exists` (v3 creating an object twice). */
export const OBJECT_ALREADY_EXISTS = /\b([a-z][\w.-]*) "([^"\n]{1,253})" already exists/;
/** v4: `conflict occurred while applying object ns/web-cm /v1, Kind=ConfigMap: Apply failed with 1 conflict: conflict with "kubectl": .data.a`. */
export const APPLY_CONFLICT = /Apply failed with \d+ conflicts?: /;
/** `Operation cannot be fulfilled on deployments.apps "web": the object has been modified; please apply your changes to the latest version and try again`. */
export const OBJECT_MODIFIED =
  /Operation cannot be fulfilled on ([\w.-]+) "([^"\n]{1,253})": the object has been modified/;

// The field-error types of k8s.io/apimachinery/pkg/util/validation/field.
const FIELD_ERROR =
  /(?:^|[\s[,])([A-Za-z][\w./-]{0,200}(?:\[[^\]\n]{0,253}\][\w./-]{0,200})*): (Invalid value|Unsupported value|Required value|Duplicate value|Forbidden|Too long|Too many|Not found|Internal error)\b/g;
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$/;
const SAFE_KIND = /^[A-Z]\w{0,62}$/;

function quoted(name: string): string {
  return SAFE_NAME.test(name) ? ` "${name}"` : "";
}

/** fieldPath keeps a path's segments and indexes; a bracketed key that is not a plain name is elided. */
function fieldPath(path: string): string {
  return path
    .replace(/^\./, "")
    .replace(/\[([^\]]*)\]/g, (_, key: string) => (/^[\w.-]{1,63}$/.test(key) ? `[${key}]` : "[…]"))
    .slice(0, 200);
}

function list(items: string[]): string {
  const unique = [...new Set(items)];
  return unique.slice(0, 5).join("; ") + (unique.length > 5 ? `; and ${unique.length - 5} more` : "");
}

/** invalidObject: `creates an invalid Deployment "web": spec.template.annotations: invalid value`. */
export function invalidObject(stderr: string): string {
  const validation = /\b([A-Z]\w*)(?:\.[\w.-]+)? "([^"\n]*)" is invalid: ([^\n]*)/.exec(stderr);
  if (validation) {
    // Quoted values are dropped before looking for field errors, so that a value cannot pose as one.
    const rest = validation[3]!.replace(/"(?:[^"\\\n]|\\.)*"/g, '""');
    const fields = [...rest.matchAll(FIELD_ERROR)].map((f) => `${fieldPath(f[1]!)}: ${f[2]!.toLowerCase()}`);
    return `creates an invalid ${kindOf(validation[1]!)}${quoted(validation[2]!)}${fields.length > 0 ? `: ${list(fields)}` : ""}`;
  }
  const typed =
    /failed to create typed patch object \([^/;\n]*\/([^;\n]*); [^\n]*?Kind=(\w+)\): (\.[\w.[\]/-]+): (expected \w+|[^\n]*)/.exec(
      stderr,
    );
  if (typed)
    return `creates an invalid ${kindOf(typed[2]!)}${quoted(typed[1]!)}: ${fieldPath(typed[3]!)}: ${typed[4]!.startsWith("expected ") ? "wrong type" : "invalid value"}`;
  const decoded =
    /\b([A-Z]\w*) in version "[^"\n]*" cannot be handled as a \w+: [^\n]*?(?:Go struct field \w+\.([\w.]+) of type)?/.exec(
      stderr,
    );
  const field = decoded?.[2] ?? /Go struct field \w+\.([\w.]+) of type/.exec(stderr)?.[1];
  return `creates an invalid ${kindOf(decoded?.[1] ?? "object")}${field ? `: ${fieldPath(field)}: wrong type` : ""}`;
}

/** existingObject: `creates configmaps "web-cm", which already exists`. */
export function existingObject(m: RegExpExecArray): string {
  return `creates ${m[1]}${quoted(m[2]!)}, which already exists`;
}

/** applyConflict: `changes fields of ConfigMap "web-cm" that another writer ("kubectl") manages: .data.a`. */
export function applyConflict(stderr: string): string {
  const object = /applying object [^/\s]+\/(\S+) [^\n]*?Kind=(\w+):/.exec(stderr);
  const manager = /conflicts? with "([\w.:/-]{1,64})"/.exec(stderr)?.[1];
  const tail = stderr.slice(stderr.search(APPLY_CONFLICT));
  const fields = [...tail.matchAll(/(?:^|[\s:])(\.[A-Za-z][\w.[\]/-]{0,200})/gm)].map((f) => fieldPath(f[1]!));
  const what = object ? `${kindOf(object[2]!)}${quoted(object[1]!)}` : "an object";
  return `changes fields of ${what} that another writer${manager ? ` ("${manager}")` : ""} manages${fields.length > 0 ? `: ${list(fields)}` : ""}`;
}

/** modifiedObject: `raced with another change of deployments.apps "web": retry`. */
export function modifiedObject(m: RegExpExecArray): string {
  return `raced with another change of ${m[1]}${quoted(m[2]!)}: retry`;
}

function kindOf(kind: string): string {
  return SAFE_KIND.test(kind) ? kind : "object";
}
