// protoc-gen-openapi: a buf/protoc plugin writing gen/openapi/openapi.json (see plugin.ts).
// Run through protoc-gen-openapi.sh, which supplies Node 24 for the type stripping.
import { runNodeJs } from "@bufbuild/protoplugin";
import { openApiPlugin } from "./plugin.ts";

runNodeJs(openApiPlugin);
