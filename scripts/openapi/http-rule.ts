import { getOption, hasOption, type DescExtension, type DescMethod, type Registry } from "@bufbuild/protobuf";
import type { GenExtension } from "@bufbuild/protobuf/codegenv2";
import type { MethodOptions } from "@bufbuild/protobuf/wkt";

/** HttpBinding is one REST binding of an RPC: a google.api.HttpRule or one of its additional_bindings. */
export interface HttpBinding {
  /** Lower-case HTTP method, as OpenAPI keys operations. */
  method: string;
  /** OpenAPI path: the rule's template with `{field=pattern}` reduced to `{field}`. */
  path: string;
  /** Request fields (proto field paths) bound to path segments. */
  pathFields: string[];
  /** HttpRule.body: "" (no body), "*" (every field not in the path) or one field's name. */
  body: string;
  /** HttpRule.response_body: "" (the whole response message) or one field's name. */
  responseBody: string;
}

/** The fields of google.api.HttpRule this plugin reads, as protobuf-es decodes them. */
interface HttpRule {
  pattern:
    | { case: "get" | "put" | "post" | "delete" | "patch"; value: string }
    | { case: "custom"; value: { kind: string; path: string } }
    | { case: undefined };
  body: string;
  responseBody: string;
  additionalBindings: HttpRule[];
}

/**
 * httpBindings are the REST bindings of a method's `google.api.http` option, the primary first; none
 * when it has no option. The extension comes from the request's own descriptors, so the plugin does
 * not depend on the generated code it helps to write.
 */
export function httpBindings(registry: Registry, method: DescMethod): HttpBinding[] {
  const extension = registry.getExtension("google.api.http");
  if (extension === undefined) return [];
  const http = extension as DescExtension as GenExtension<MethodOptions, HttpRule>;
  if (!hasOption(method, http)) return [];
  const rule = getOption(method, http);
  return [rule, ...rule.additionalBindings].map((r) => binding(method, r));
}

function binding(method: DescMethod, rule: HttpRule): HttpBinding {
  const where = `${method.parent.typeName}.${method.name}`;
  let verb: string;
  let template: string;
  switch (rule.pattern.case) {
    case "custom":
      verb = rule.pattern.value.kind.toLowerCase();
      template = rule.pattern.value.path;
      break;
    case undefined:
      throw new Error(`openapi: the google.api.http rule of ${where} has no pattern`);
    default:
      verb = rule.pattern.case;
      template = rule.pattern.value;
  }
  const pathFields: string[] = [];
  const path = template.replace(/\{([^}=]+)(=[^}]*)?\}/g, (_, field: string) => {
    pathFields.push(field);
    return `{${field}}`;
  });
  if (/:[A-Za-z]+$/.test(path)) throw new Error(`openapi: custom verbs (${template} of ${where}) are not supported`);
  return { method: verb, path, pathFields, body: rule.body, responseBody: rule.responseBody };
}
