import { create, createFileRegistry, protoInt64 } from "@bufbuild/protobuf";
import {
  CodeGeneratorResponse_Feature,
  CodeGeneratorResponseSchema,
  FileDescriptorSetSchema,
  type CodeGeneratorRequest,
  type CodeGeneratorResponse,
} from "@bufbuild/protobuf/wkt";
import type { Plugin } from "@bufbuild/protoplugin";
import { buildDocument } from "./document.ts";

/** OUTPUT is the generated file, relative to the plugin's `out` directory. */
export const OUTPUT = "openapi/openapi.json";

/**
 * openApiPlugin turns the proto files of one package into OpenAPI. Option `package=NAME` picks the
 * package (default paas.v1); with `strategy: all` buf sends every file in one request, and the
 * vendored google/grpc files only supply descriptors.
 */
export const openApiPlugin: Plugin = {
  name: "protoc-gen-openapi",
  version: "v1",
  run(request: CodeGeneratorRequest): CodeGeneratorResponse {
    const pkg = parseOptions(request.parameter);
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: request.protoFile }));
    const files = request.fileToGenerate
      .map((name) => registry.getFile(name))
      .filter((f) => f !== undefined && f.proto.package === pkg)
      .map((f) => f!)
      // Sorted, so the output does not depend on the order buf lists the files in.
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    if (files.length === 0) throw new Error(`no file of package ${pkg} to generate`);
    const document = buildDocument(registry, files);
    return create(CodeGeneratorResponseSchema, {
      supportedFeatures: protoInt64.parse(CodeGeneratorResponse_Feature.PROTO3_OPTIONAL),
      file: [{ name: OUTPUT, content: `${JSON.stringify(document, null, 2)}\n` }],
    });
  },
};

function parseOptions(parameter: string): string {
  let pkg = "paas.v1";
  for (const option of parameter.split(",").filter((s) => s !== "")) {
    const [key, value] = option.split("=", 2);
    if (key === "package" && value) pkg = value;
    else throw new Error(`unknown option ${option}`);
  }
  return pkg;
}
