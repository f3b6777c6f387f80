import { clone, create, fromJsonString, setExtension, toJsonString, type MessageInitShape } from "@bufbuild/protobuf";
import {
  CodeGeneratorRequestSchema,
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  file_google_protobuf_descriptor,
  file_google_protobuf_timestamp,
  FileDescriptorProtoSchema,
  MethodOptionsSchema,
  ServiceDescriptorProtoSchema,
  type CodeGeneratorRequest,
  type FieldDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "vitest";
import { file_google_api_annotations, http } from "../../../../gen/google/api/annotations_pb.js";
import { file_google_api_http, HttpRuleSchema } from "../../../../gen/google/api/http_pb.js";
import { openApiPlugin, OUTPUT } from "../../../../scripts/openapi/plugin.ts";

// The plugin on a synthetic proto file with what paas.v1 lacks: 64-bit integers, bytes, maps,
// repeated enums, a recursive message, query parameters, additional_bindings, response_body.

type Obj = Record<string, any>;

type FieldInit = MessageInitShape<typeof FieldDescriptorProtoSchema>;

/** field is a field as protoc describes it, json_name included. */
function field(name: string, number: number, type: Type, extra: FieldInit = {}): FieldInit {
  return {
    name,
    number,
    type,
    label: Label.OPTIONAL,
    jsonName: name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()),
    ...extra,
  };
}

function methodOptions(rule: MessageInitShape<typeof HttpRuleSchema>) {
  const options = create(MethodOptionsSchema);
  setExtension(options, http, create(HttpRuleSchema, rule));
  return options;
}

const kitchen = create(FileDescriptorProtoSchema, {
  name: "kitchen/v1/kitchen.proto",
  package: "kitchen.v1",
  syntax: "proto3",
  dependency: ["google/api/annotations.proto", "google/protobuf/timestamp.proto"],
  enumType: [
    {
      name: "Color",
      value: [
        { name: "COLOR_UNSPECIFIED", number: 0 },
        { name: "COLOR_RED", number: 1 },
      ],
    },
  ],
  messageType: [
    {
      name: "Kitchen",
      field: [
        field("big", 1, Type.INT64),
        field("ubig", 2, Type.UINT64),
        field("sbig", 3, Type.SINT64),
        field("fbig", 4, Type.FIXED64),
        field("small", 5, Type.INT32),
        field("usmall", 6, Type.UINT32),
        field("raw", 7, Type.BYTES),
        field("ratio", 8, Type.DOUBLE),
        field("many", 9, Type.INT64, { label: Label.REPEATED }),
        field("counts", 10, Type.MESSAGE, { label: Label.REPEATED, typeName: ".kitchen.v1.Kitchen.CountsEntry" }),
        field("color", 11, Type.ENUM, { typeName: ".kitchen.v1.Color" }),
        field("seen_at", 12, Type.MESSAGE, { typeName: ".google.protobuf.Timestamp" }),
        field("child", 13, Type.MESSAGE, { typeName: ".kitchen.v1.Kitchen" }),
        field("note", 14, Type.STRING, { proto3Optional: true, oneofIndex: 0 }),
      ],
      oneofDecl: [{ name: "_note" }],
      nestedType: [
        {
          name: "CountsEntry",
          options: { mapEntry: true },
          field: [field("key", 1, Type.STRING), field("value", 2, Type.INT64)],
        },
      ],
    },
    {
      name: "GetKitchenRequest",
      field: [
        field("id", 1, Type.INT32),
        field("filter", 2, Type.STRING),
        field("colors", 3, Type.ENUM, { label: Label.REPEATED, typeName: ".kitchen.v1.Color" }),
      ],
    },
    {
      name: "Wrapper",
      field: [
        field("id", 1, Type.INT32),
        field("kitchen", 2, Type.MESSAGE, { typeName: ".kitchen.v1.Kitchen" }),
        field("dry_run", 3, Type.BOOL),
      ],
    },
  ],
  service: [
    {
      name: "KitchenService",
      method: [
        {
          name: "UpdateKitchen",
          inputType: ".kitchen.v1.Kitchen",
          outputType: ".kitchen.v1.Kitchen",
          options: methodOptions({ pattern: { case: "post", value: "/v1/kitchens/{small}" }, body: "*" }),
        },
        {
          name: "PutKitchen",
          inputType: ".kitchen.v1.Wrapper",
          outputType: ".kitchen.v1.Kitchen",
          options: methodOptions({
            pattern: { case: "put", value: "/v1/wrapped/{id}" },
            body: "kitchen",
            additionalBindings: [
              create(HttpRuleSchema, { pattern: { case: "post", value: "/v1/wrapped/{id=*}" }, body: "*" }),
            ],
          }),
        },
        {
          name: "GetKitchen",
          inputType: ".kitchen.v1.GetKitchenRequest",
          outputType: ".kitchen.v1.Kitchen",
          options: methodOptions({ pattern: { case: "get", value: "/v1/kitchens/{id}" }, responseBody: "child" }),
        },
        {
          name: "WatchKitchen",
          inputType: ".kitchen.v1.GetKitchenRequest",
          outputType: ".kitchen.v1.Kitchen",
          serverStreaming: true,
        },
      ],
    },
  ],
});

const deps = [
  file_google_protobuf_descriptor,
  file_google_protobuf_timestamp,
  file_google_api_http,
  file_google_api_annotations,
].map((f) => f.proto);

function request(options: { parameter?: string; files?: typeof deps; generate?: string[] } = {}): CodeGeneratorRequest {
  const files = options.files ?? [...deps, kitchen];
  return create(CodeGeneratorRequestSchema, {
    parameter: options.parameter ?? "package=kitchen.v1",
    protoFile: files,
    fileToGenerate: options.generate ?? files.map((f) => f.name),
  });
}

function generate(req: CodeGeneratorRequest): { name: string; content: string } {
  const res = openApiPlugin.run(req);
  expect(res.file.map((f) => f.name)).toEqual([OUTPUT]);
  return res.file[0]!;
}

describe("protoc-gen-openapi", () => {
  const doc = JSON.parse(generate(request()).content) as Obj;
  const schemas = doc.components.schemas as Obj;

  it("writes a valid OpenAPI 3.1 document", async () => {
    const result = await new Validator().validate(doc);
    expect(result.errors).toBeUndefined();
    expect(doc.info.version).toBe("v1");
  });

  it("writes proto3 JSON in the Connect schemas: 64-bit integers as strings, bytes as base64, maps as objects", () => {
    const k = schemas["kitchen.v1.Kitchen"].properties;
    expect(k.big).toEqual({ type: "string", format: "int64", pattern: "^-?[0-9]+$" });
    expect(k.ubig).toEqual({ type: "string", format: "uint64", pattern: "^[0-9]+$" });
    expect(k.sbig.type).toBe("string");
    expect(k.fbig.type).toBe("string");
    expect(k.small).toEqual({ type: "integer", format: "int32" });
    expect(k.usmall).toMatchObject({ type: "integer", minimum: 0, maximum: 4294967295 });
    expect(k.raw).toEqual({ type: "string", contentEncoding: "base64" });
    expect(k.ratio.type).toBe("number");
    expect(k.many).toEqual({ type: "array", items: { type: "string", format: "int64", pattern: "^-?[0-9]+$" } });
    expect(k.counts).toEqual({
      type: "object",
      additionalProperties: { type: "string", format: "int64", pattern: "^-?[0-9]+$" },
    });
    expect(k.color).toEqual({ $ref: "#/components/schemas/kitchen.v1.Color" });
    expect(schemas["kitchen.v1.Color"].enum).toEqual(["COLOR_UNSPECIFIED", "COLOR_RED"]);
    expect(k.seenAt).toMatchObject({ type: "string", format: "date-time" });
    expect(k.child).toEqual({ $ref: "#/components/schemas/kitchen.v1.Kitchen" });
    expect(k.note).toEqual({ type: "string" });
    expect(schemas["kitchen.v1.Kitchen.CountsEntry"]).toBeUndefined();
  });

  it("writes the REST schemas with proto names and null for absent messages", () => {
    const k = schemas["rest.Kitchen"].properties;
    expect(Object.keys(k)).toContain("seen_at");
    expect(k.big.type).toBe("string");
    expect(k.seen_at.type).toEqual(["string", "null"]);
    expect(k.child).toEqual({ anyOf: [{ $ref: "#/components/schemas/rest.Kitchen" }, { type: "null" }] });
  });

  it("binds paths, bodies and query parameters as gRPC transcoding does", () => {
    const post = doc.paths["/v1/kitchens/{small}"].post;
    expect(post.operationId).toBe("UpdateKitchen");
    expect(post.parameters).toEqual([
      { name: "small", in: "path", required: true, schema: { type: "integer", format: "int32" } },
    ]);
    expect(post.requestBody.content["application/json"].schema.properties).not.toHaveProperty("small");
    expect(post.requestBody.content["application/json"].schema.title).toBe("Kitchen");
    const put = doc.paths["/v1/wrapped/{id}"].put;
    expect(put.operationId).toBe("PutKitchen");
    expect(put.requestBody.content["application/json"].schema).toEqual({
      anyOf: [{ $ref: "#/components/schemas/rest.Kitchen" }, { type: "null" }],
    });
    expect(put.parameters.map((p: Obj) => `${p.in}:${p.name}`)).toEqual(["path:id", "query:dry_run"]);
    const wrapped = doc.paths["/v1/wrapped/{id}"].post;
    expect(wrapped.operationId).toBe("PutKitchen_1");
    expect(Object.keys(wrapped.requestBody.content["application/json"].schema.properties)).toEqual([
      "kitchen",
      "dry_run",
    ]);
    const get = doc.paths["/v1/kitchens/{id}"].get;
    expect(get.parameters.map((p: Obj) => `${p.in}:${p.name}`)).toEqual(["path:id", "query:filter", "query:colors"]);
    expect(get.parameters[2].schema).toEqual({ type: "array", items: { $ref: "#/components/schemas/rest.Color" } });
    expect(get.responses["200"].content["application/json"].schema).toEqual({
      $ref: "#/components/schemas/rest.Kitchen",
    });
    expect(Object.keys(get.responses)).not.toContain("409");
    expect(doc.paths["/kitchen.v1.KitchenService/WatchKitchen"].post.requestBody.content).toHaveProperty(
      "application/connect+json",
    );
    expect(Object.keys(doc.paths)).toEqual([
      "/health",
      "/healthz",
      "/readyz",
      "/health/live",
      "/health/ready",
      "/v1/kitchens/{small}",
      "/v1/wrapped/{id}",
      "/v1/kitchens/{id}",
      "/kitchen.v1.KitchenService/UpdateKitchen",
      "/kitchen.v1.KitchenService/PutKitchen",
      "/kitchen.v1.KitchenService/GetKitchen",
      "/kitchen.v1.KitchenService/WatchKitchen",
    ]);
  });

  it("writes the same bytes whatever the order of the request's files", () => {
    const first = generate(request()).content;
    expect(generate(request()).content).toBe(first);
    // protoc and buf list protoFile in dependency order; fileToGenerate's order is theirs to pick.
    const names = [...deps, kitchen].map((f) => f.name);
    expect(generate(request({ generate: [...names].reverse() })).content).toBe(first);
    expect(first.endsWith("}\n")).toBe(true);
  });

  it("only documents the chosen package, and fails on an unknown option or no such package", () => {
    expect(() => openApiPlugin.run(request({ parameter: "package=nope.v1" }))).toThrow(/no file of package nope.v1/);
    expect(() => openApiPlugin.run(request({ parameter: "colour=red" }))).toThrow(/unknown option colour=red/);
  });

  it("refuses a query parameter it cannot describe, rather than leaving it out", () => {
    const bad = clone(FileDescriptorProtoSchema, kitchen);
    bad.service = [
      create(ServiceDescriptorProtoSchema, {
        name: "BadService",
        method: [
          {
            name: "Get",
            inputType: ".kitchen.v1.Wrapper",
            outputType: ".kitchen.v1.Kitchen",
            options: methodOptions({ pattern: { case: "get", value: "/v1/bad/{id}" } }),
          },
        ],
      }),
    ];
    expect(() => openApiPlugin.run(request({ files: [...deps, bad] }))).toThrow(
      /query parameter kitchen of a message type/,
    );
  });

  it("fails when rest-contract.ts names an RPC or message the package does not have", () => {
    // kitchen.v1 renamed to paas.v1: the contract's paas.v1 entries now name missing RPCs.
    const renamed = fromJsonString(
      FileDescriptorProtoSchema,
      toJsonString(FileDescriptorProtoSchema, kitchen).replaceAll("kitchen.v1", "paas.v1"),
    );
    expect(() => openApiPlugin.run(request({ parameter: "package=paas.v1", files: [...deps, renamed] }))).toThrow(
      /rest-contract.ts names the unknown RPC paas.v1.ReleaseService.InstallRelease/,
    );
  });
});
