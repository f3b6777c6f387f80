import type { DescEnum, DescField, DescMessage } from "@bufbuild/protobuf";
import { describe } from "./comments.ts";
import type { Dialect } from "./dialects.ts";
import { scalarSchema } from "./dialects.ts";
import type { JsonObject } from "./json.ts";

/** ObjectOptions narrow a message's object schema, for REST bodies without the path fields. */
export interface ObjectOptions {
  /** Fields (proto names) left out. */
  omit?: string[];
}

/**
 * SchemaSet collects the component schemas of the messages and enums that operations reference,
 * in one dialect, into a map shared by all dialects (names never collide: see Dialect.componentName).
 */
export class SchemaSet {
  private readonly owners = new Map<string, DescMessage | DescEnum>();
  private readonly dialect: Dialect;
  readonly schemas: Record<string, JsonObject>;

  constructor(dialect: Dialect, schemas: Record<string, JsonObject>) {
    this.dialect = dialect;
    this.schemas = schemas;
  }

  /** ref is the schema of a value of a message or enum type: a $ref, or an inline well-known type. */
  ref(desc: DescMessage | DescEnum): JsonObject {
    if (desc.kind === "message") {
      const inline = this.dialect.inlineMessage(desc);
      if (inline !== undefined) return structuredClone(inline);
    }
    const name = this.dialect.componentName(desc);
    const owner = this.owners.get(name);
    if (owner === undefined) {
      if (name in this.schemas) throw new Error(`openapi: component name ${name} of ${desc.typeName} is taken`);
      this.owners.set(name, desc);
      this.schemas[name] = {}; // placeholder: recursive messages refer to themselves
      this.schemas[name] = desc.kind === "enum" ? this.dialect.enumSchema(desc) : this.object(desc);
    } else if (owner !== desc) {
      throw new Error(`openapi: ${owner.typeName} and ${desc.typeName} both map to the component ${name}`);
    }
    return { $ref: `#/components/schemas/${name}` };
  }

  /** object is a message as a JSON object schema, its fields' comments as descriptions. */
  object(desc: DescMessage, options: ObjectOptions = {}): JsonObject {
    const fields = desc.fields.filter((f) => !(options.omit ?? []).includes(f.name));
    for (const name of options.omit ?? []) {
      if (!desc.fields.some((f) => f.name === name)) throw new Error(`openapi: ${desc.typeName} has no field ${name}`);
    }
    const properties: JsonObject = {};
    for (const field of fields) {
      const name = this.dialect.propertyName(field);
      if (name === "" || name in properties)
        throw new Error(`openapi: ${desc.typeName}.${field.name} has the JSON name "${name}" of another field`);
      properties[name] = this.field(field);
    }
    const names = new Set(fields.map((f) => f.name));
    const required = this.dialect.required(desc).filter((name) => names.has(name));
    for (const name of this.dialect.required(desc)) {
      if (!desc.fields.some((f) => f.name === name))
        throw new Error(`openapi: required field ${name} is not a field of ${desc.typeName}`);
    }
    const description = describe(desc);
    return {
      type: "object",
      // Components show their names; an inline body (a message less its path fields) needs a title.
      ...((options.omit ?? []).length > 0 ? { title: desc.name } : {}),
      ...(description !== undefined ? { description } : {}),
      properties,
      ...(required.length > 0
        ? { required: required.map((name) => this.dialect.propertyName(desc.fields.find((f) => f.name === name)!)) }
        : {}),
    };
  }

  /**
   * field is the schema of one field's value, its comment first in the description; null is
   * allowed where the dialect writes null (unless options.nullable is false).
   */
  field(field: DescField, options: { nullable?: boolean } = {}): JsonObject {
    let schema = this.value(field);
    if ((options.nullable ?? true) && this.dialect.nullable(field)) schema = orNull(schema);
    const comment = describe(field);
    if (comment !== undefined) {
      const typeNote =
        typeof schema.description === "string" && schema.$ref === undefined ? schema.description : undefined;
      schema.description = typeNote !== undefined ? `${comment}\n\n${typeNote}` : comment;
    }
    return schema;
  }

  private value(field: DescField): JsonObject {
    switch (field.fieldKind) {
      case "scalar":
        return scalarSchema(field.scalar);
      case "enum":
        return this.ref(field.enum);
      case "message":
        return this.ref(field.message);
      case "list":
        return {
          type: "array",
          items:
            field.listKind === "scalar"
              ? scalarSchema(field.scalar)
              : field.listKind === "enum"
                ? this.ref(field.enum)
                : this.ref(field.message),
        };
      case "map":
        // JSON object keys are strings whatever the proto key type.
        return {
          type: "object",
          additionalProperties:
            field.mapKind === "scalar"
              ? scalarSchema(field.scalar)
              : field.mapKind === "enum"
                ? this.ref(field.enum)
                : this.ref(field.message),
        };
    }
  }
}

/** orNull widens a schema to allow null: a type list for inline schemas, anyOf for references. */
function orNull(schema: JsonObject): JsonObject {
  if (schema.$ref !== undefined) return { anyOf: [schema, { type: "null" }] };
  const type = schema.type;
  if (typeof type === "string") return { ...schema, type: [type, "null"] };
  if (Array.isArray(type)) return type.includes("null") ? schema : { ...schema, type: [...type, "null"] };
  return { anyOf: [schema, { type: "null" }] };
}
