import type { ServiceImpl } from "@connectrpc/connect";
import { create, createRegistry, toBinary, type DescFile, type DescService, type Registry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  ServerReflection,
  ServerReflectionResponseSchema,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";

/**
 * createReflectionService implements grpc.reflection.v1 over the descriptors of the served
 * services, so that grpcurl and buf curl work without the .proto files.
 */
export function createReflectionService(services: DescService[]): ServiceImpl<typeof ServerReflection> {
  const files = new Map<string, DescFile>();
  for (const s of services) for (const f of withDependencies(s.file)) files.set(f.name, f);
  const registry = createRegistry(...files.values());
  const names = services.map((s) => s.typeName);

  const fileResponse = (file: DescFile): ServerReflectionResponse["messageResponse"] => ({
    case: "fileDescriptorResponse",
    value: {
      $typeName: "grpc.reflection.v1.FileDescriptorResponse",
      fileDescriptorProto: withDependencies(file).map(encode),
    },
  });

  const answer = (req: ServerReflectionRequest): ServerReflectionResponse["messageResponse"] => {
    const r = req.messageRequest;
    switch (r.case) {
      case "listServices":
        return {
          case: "listServicesResponse",
          value: {
            $typeName: "grpc.reflection.v1.ListServiceResponse",
            service: names.map((name) => ({ $typeName: "grpc.reflection.v1.ServiceResponse", name })),
          },
        };
      case "fileByFilename": {
        const file = files.get(r.value);
        return file ? fileResponse(file) : notFound(`file ${r.value} not found`);
      }
      case "fileContainingSymbol": {
        const file = fileOfSymbol(registry, r.value);
        return file ? fileResponse(file) : notFound(`symbol ${r.value} not found`);
      }
      case "fileContainingExtension":
        return notFound(`extension ${r.value.containingType}#${r.value.extensionNumber} not found`);
      case "allExtensionNumbersOfType":
        return registry.getMessage(r.value)
          ? {
              case: "allExtensionNumbersResponse",
              value: {
                $typeName: "grpc.reflection.v1.ExtensionNumberResponse",
                baseTypeName: r.value,
                extensionNumber: [],
              },
            }
          : notFound(`type ${r.value} not found`);
      default:
        return {
          case: "errorResponse",
          value: { $typeName: "grpc.reflection.v1.ErrorResponse", errorCode: 3, errorMessage: "unsupported request" },
        };
    }
  };

  return {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        yield create(ServerReflectionResponseSchema, {
          validHost: req.host,
          originalRequest: req,
          messageResponse: answer(req),
        });
      }
    },
  };
}

function notFound(errorMessage: string): ServerReflectionResponse["messageResponse"] {
  // gRPC code NOT_FOUND, as grpc-go's reflection service answers.
  return {
    case: "errorResponse",
    value: { $typeName: "grpc.reflection.v1.ErrorResponse", errorCode: 5, errorMessage },
  };
}

/** fileOfSymbol finds the file that declares a message, enum, service or method. */
function fileOfSymbol(registry: Registry, symbol: string): DescFile | undefined {
  const direct = registry.get(symbol);
  if (direct && "file" in direct) return direct.file;
  // A method (pkg.Service.Method) or an enum value / field: look up the parent.
  const parent = symbol.slice(0, symbol.lastIndexOf("."));
  const owner = parent ? registry.get(parent) : undefined;
  return owner && "file" in owner ? owner.file : undefined;
}

/** withDependencies lists a file and everything it imports, each once, the file first. */
function withDependencies(file: DescFile): DescFile[] {
  const seen = new Map<string, DescFile>();
  const visit = (f: DescFile) => {
    if (seen.has(f.name)) return;
    seen.set(f.name, f);
    f.dependencies.forEach(visit);
  };
  visit(file);
  return [...seen.values()];
}

function encode(file: DescFile): Uint8Array {
  return toBinary(FileDescriptorProtoSchema, file.proto);
}
