import { ScalarType, type DescEnum, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { describe } from "./comments.ts";
import type { JsonObject } from "./json.ts";
import { REST_ENUMS, REST_NULLABLE, REST_REQUIRED, REST_TYPES } from "./rest-contract.ts";

/** Dialect is how one wire format writes messages as JSON: Connect's proto-JSON or the REST layer's. */
export interface Dialect {
  /** Name of the component schema of a message or enum. */
  componentName(desc: DescMessage | DescEnum): string;
  /** JSON property name of a field. */
  propertyName(field: DescField): string;
  /** Inline schema of a message type that is not written as an object of its fields (well-known types). */
  inlineMessage(desc: DescMessage): JsonObject | undefined;
  /** Schema of an enum. */
  enumSchema(desc: DescEnum): JsonObject;
  /** Properties always present (responses) or required (requests) of a message. */
  required(desc: DescMessage): string[];
  /** Whether a field may be written as null. */
  nullable(field: DescField): boolean;
}

/**
 * scalarSchema is the proto3 JSON form of a scalar: 64-bit integers are decimal strings (proto-JSON
 * parsers also take numbers), bytes are base64.
 */
export function scalarSchema(scalar: ScalarType): JsonObject {
  switch (scalar) {
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.BYTES:
      return { type: "string", contentEncoding: "base64" };
    case ScalarType.DOUBLE:
      return { type: "number", format: "double" };
    case ScalarType.FLOAT:
      return { type: "number", format: "float" };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: "integer", format: "int32" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: "integer", format: "int64", minimum: 0, maximum: 4294967295 };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return { type: "string", format: "int64", pattern: "^-?[0-9]+$" };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: "string", format: "uint64", pattern: "^[0-9]+$" };
  }
}

/** wellKnownSchema is the proto3 JSON form of a google.protobuf well-known type, or undefined for other messages. */
export function wellKnownSchema(desc: DescMessage): JsonObject | undefined {
  switch (desc.typeName) {
    case "google.protobuf.Timestamp":
      return {
        type: "string",
        format: "date-time",
        description: "RFC 3339 timestamp in UTC, e.g. `2025-01-02T03:04:05Z`.",
      };
    case "google.protobuf.Duration":
      return {
        type: "string",
        pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$",
        description: 'Seconds with the suffix "s", e.g. `"300s"`.',
        examples: ["300s"],
      };
    case "google.protobuf.Struct":
      return { type: "object", additionalProperties: true, description: "Any JSON object." };
    case "google.protobuf.Value":
      return { description: "Any JSON value." };
    case "google.protobuf.ListValue":
      return { type: "array", items: {}, description: "Any JSON array." };
    case "google.protobuf.Empty":
      return { type: "object" };
    case "google.protobuf.FieldMask":
      return { type: "string", description: "Comma-separated lowerCamelCase field paths." };
    case "google.protobuf.Any":
      return {
        type: "object",
        properties: { "@type": { type: "string" } },
        required: ["@type"],
        additionalProperties: true,
      };
  }
  // Wrappers (google.protobuf.Int64Value, …) are written as the value they wrap, or null.
  if (desc.file.proto.package === "google.protobuf" && desc.name.endsWith("Value") && desc.fields.length === 1) {
    const value = desc.fields[0];
    if (value.fieldKind === "scalar") {
      const schema = scalarSchema(value.scalar);
      return { ...schema, type: [schema.type as string, "null"] };
    }
  }
  return undefined;
}

/** enumNames is an enum written as the names of its values, the values' comments listed. */
function enumNames(values: [name: string, text: string | undefined][], intro: string | undefined): JsonObject {
  const documented = values
    .filter(([, text]) => text !== undefined)
    .map(([name, text]) => `- \`${name}\`: ${text!.replace(/\s+/g, " ")}`);
  const description = [intro, ...(documented.length > 0 ? [documented.join("\n")] : [])]
    .filter((s) => s !== undefined)
    .join("\n\n");
  return {
    type: "string",
    enum: values.map(([name]) => name),
    ...(description !== "" ? { description } : {}),
  };
}

/** connectDialect is proto3 JSON as Connect writes it: lowerCamelCase names, enum value names, nothing required. */
export const connectDialect: Dialect = {
  componentName: (desc) => desc.typeName,
  propertyName: (field) => field.jsonName,
  inlineMessage: wellKnownSchema,
  enumSchema: (desc) =>
    enumNames(
      desc.values.map((v) => [v.name, describe(v)]),
      describe(desc),
    ),
  required: () => [],
  // Proto-JSON leaves unset fields out rather than writing null.
  nullable: () => false,
};

/** restDialect is the REST layer's JSON: proto names (snake_case) and the overrides of rest-contract.ts. */
export const restDialect: Dialect = {
  componentName: (desc) => `rest.${desc.typeName.slice(desc.file.proto.package.length + 1)}`,
  propertyName: (field) => field.name,
  inlineMessage: (desc) => REST_TYPES[desc.typeName] ?? wellKnownSchema(desc),
  enumSchema: (desc) => {
    const rest = REST_ENUMS[desc.typeName];
    if (rest === undefined) return connectDialect.enumSchema(desc);
    const values = desc.values.flatMap((v): [string, string | undefined][] => {
      const value = rest.value(v.name);
      return value === undefined ? [] : [[value, describe(v)]];
    });
    return enumNames(values, rest.description);
  },
  required: (desc) => REST_REQUIRED[desc.typeName] ?? [],
  nullable: (field) =>
    (field.fieldKind === "message" && restDialect.inlineMessage(field.message) === undefined) ||
    (REST_NULLABLE[field.parent.typeName] ?? []).includes(field.name),
};
