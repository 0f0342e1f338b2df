import { create, toBinary } from "@bufbuild/protobuf";
import type { DescEnum, DescExtension, DescFile, DescMessage } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** grpc.reflection's ErrorResponse carries a gRPC status code; NOT_FOUND is the only one we send. */
const NOT_FOUND = 5;

/** What a request is answered with, as init data that fits the v1 and the v1alpha response alike. */
type Answer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/** The request oneof; v1 and v1alpha have the same shape. */
type Query = (v1.ServerReflectionRequest | v1alpha.ServerReflectionRequest)["messageRequest"];

/**
 * Serves gRPC server reflection (`grpc.reflection.v1` and `v1alpha`, both bidi streams) on `router`, so
 * tools such as `buf curl` and grpcurl work without a schema. Lists the services of `files` plus the two
 * reflection services; answers file and symbol lookups with the file and all its transitive dependencies.
 * Bidi streams need HTTP/2: clients reflect over h2c or TLS (buf curl switches to h2c by itself for it).
 */
export function registerReflection(router: ConnectRouter, files: readonly DescFile[]): void {
  const reflectionFiles = [v1.file_grpc_reflection_v1_reflection, v1alpha.file_grpc_reflection_v1alpha_reflection];
  const services = [...new Set([...files, ...reflectionFiles].flatMap((f) => f.services.map((s) => s.typeName)))];
  const index = indexFiles([...files, ...reflectionFiles]);

  router.service(v1.ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        const messageResponse = answer(req.messageRequest, index, services);
        const init = { validHost: req.host, originalRequest: req, messageResponse };
        yield create(v1.ServerReflectionResponseSchema, init);
      }
    },
  });
  // Same protocol under the old package name; buf curl falls back to it when v1 is missing.
  router.service(v1alpha.ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        const messageResponse = answer(req.messageRequest, index, services);
        const init = { validHost: req.host, originalRequest: req, messageResponse };
        yield create(v1alpha.ServerReflectionResponseSchema, init);
      }
    },
  });
}

interface Index {
  /** Proto file name ("google/protobuf/timestamp.proto") → file, transitive dependencies included. */
  files: Map<string, DescFile>;
  /** Fully-qualified name without leading dot → file that defines it. */
  symbols: Map<string, DescFile>;
  /** Names of all message types (the only things extensions can extend). */
  messages: Set<string>;
  /** Extended message type name → its known extensions. */
  extensions: Map<string, DescExtension[]>;
  /** Serialized FileDescriptorProtos, filled on first use and reused across requests and connections. */
  binary: Map<DescFile, Uint8Array>;
}

/** Walks the files and their imports once, recording every name a client may ask about. */
function indexFiles(roots: readonly DescFile[]): Index {
  const index: Index = {
    files: new Map(),
    symbols: new Map(),
    messages: new Set(),
    extensions: new Map(),
    binary: new Map(),
  };
  const addExtension = (file: DescFile, ext: DescExtension): void => {
    index.symbols.set(ext.typeName, file);
    index.extensions.set(ext.extendee.typeName, [...(index.extensions.get(ext.extendee.typeName) ?? []), ext]);
  };
  const addEnum = (file: DescFile, e: DescEnum): void => {
    index.symbols.set(e.typeName, file);
    // Enum values are scoped like siblings of their enum (C++ scoping rules), e.g. "spectra.v1.LOG_LEVEL_INFO".
    const scope = e.typeName.slice(0, e.typeName.length - e.name.length);
    for (const v of e.values) index.symbols.set(scope + v.name, file);
  };
  const addMessage = (file: DescFile, m: DescMessage): void => {
    index.symbols.set(m.typeName, file);
    index.messages.add(m.typeName);
    for (const f of m.fields) index.symbols.set(`${m.typeName}.${f.name}`, file);
    for (const o of m.oneofs) index.symbols.set(`${m.typeName}.${o.name}`, file);
    for (const n of m.nestedMessages) addMessage(file, n);
    for (const n of m.nestedEnums) addEnum(file, n);
    for (const n of m.nestedExtensions) addExtension(file, n);
  };
  const addFile = (file: DescFile): void => {
    if (index.files.has(file.proto.name)) return;
    index.files.set(file.proto.name, file);
    for (const s of file.services) {
      index.symbols.set(s.typeName, file);
      for (const m of s.methods) index.symbols.set(`${s.typeName}.${m.name}`, file);
    }
    for (const m of file.messages) addMessage(file, m);
    for (const e of file.enums) addEnum(file, e);
    for (const x of file.extensions) addExtension(file, x);
    for (const dep of file.dependencies) addFile(dep);
  };
  for (const f of roots) addFile(f);
  return index;
}

/**
 * The file first, then every transitive dependency once: clients need them all to build a schema, and the
 * spec lets servers send them with the file (clients skip what they already hold).
 */
function fileWithDeps(index: Index, file: DescFile): Answer {
  const ordered = new Set<DescFile>();
  const visit = (f: DescFile): void => {
    if (ordered.has(f)) return;
    ordered.add(f);
    f.dependencies.forEach(visit);
  };
  visit(file);
  const fileDescriptorProto = [...ordered].map((f) => {
    let bytes = index.binary.get(f);
    if (!bytes) index.binary.set(f, (bytes = toBinary(FileDescriptorProtoSchema, f.proto)));
    return bytes;
  });
  return { case: "fileDescriptorResponse", value: { fileDescriptorProto } };
}

/** Answers one reflection request; anything unknown or unsupported gets NOT_FOUND. */
function answer(query: Query, index: Index, services: string[]): Answer {
  const notFound = (what: string): Answer => ({
    case: "errorResponse",
    value: { errorCode: NOT_FOUND, errorMessage: `${what} not found` },
  });
  const strip = (name: string): string => name.replace(/^\./, ""); // ".pkg.Msg" and "pkg.Msg" are the same
  switch (query.case) {
    case "listServices":
      return { case: "listServicesResponse", value: { service: services.map((name) => ({ name })) } };
    case "fileByFilename": {
      const file = index.files.get(query.value);
      return file ? fileWithDeps(index, file) : notFound(`file ${query.value}`);
    }
    case "fileContainingSymbol": {
      const file = index.symbols.get(strip(query.value));
      return file ? fileWithDeps(index, file) : notFound(`symbol ${query.value}`);
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = query.value;
      const ext = index.extensions.get(strip(containingType))?.find((x) => x.number === extensionNumber);
      return ext ? fileWithDeps(index, ext.file) : notFound(`extension ${extensionNumber} of ${containingType}`);
    }
    case "allExtensionNumbersOfType": {
      const type = strip(query.value);
      if (!index.messages.has(type)) return notFound(`message type ${query.value}`);
      const extensionNumber = (index.extensions.get(type) ?? []).map((x) => x.number).sort((a, b) => a - b);
      return { case: "allExtensionNumbersResponse", value: { baseTypeName: type, extensionNumber } };
    }
    default:
      return notFound("request kind");
  }
}
