import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { create, createFileRegistry, fromBinary, type DescFile, type MessageInitShape } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  file_google_protobuf_descriptor,
} from "@bufbuild/protobuf/wkt";
import { createClient, createRouterTransport, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../common/logger.js";
import {
  ServerReflection,
  type ServerReflectionRequestSchema,
  type ServerReflectionResponse,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionAlpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import {
  AdminService,
  ListAgentsResponseSchema,
  file_spectra_v1_admin_service,
} from "../../gen/spectra/v1/admin_service_pb.js";
import { listen, type SpectraListener } from "../http/listener.js";
import { registerReflection } from "./reflection.js";

/**
 * A small file with what the spectra protos lack: a nested message, a nested enum and an extension
 * (`extend google.protobuf.MessageOptions { string label = 50001; }`).
 */
function extensionFile(): DescFile {
  const proto = create(FileDescriptorProtoSchema, {
    name: "test/ext.proto",
    package: "test",
    syntax: "proto3",
    dependency: ["google/protobuf/descriptor.proto"],
    messageType: [
      {
        name: "Outer",
        nestedType: [
          {
            name: "Inner",
            field: [
              { name: "x", number: 1, type: FieldDescriptorProto_Type.INT32, label: FieldDescriptorProto_Label.OPTIONAL },
            ],
          },
        ],
        enumType: [{ name: "Kind", value: [{ name: "KIND_UNSPECIFIED", number: 0 }] }],
      },
    ],
    extension: [
      {
        name: "label",
        number: 50001,
        extendee: ".google.protobuf.MessageOptions",
        type: FieldDescriptorProto_Type.STRING,
        label: FieldDescriptorProto_Label.OPTIONAL,
      },
    ],
  });
  const set = create(FileDescriptorSetSchema, { file: [file_google_protobuf_descriptor.proto, proto] });
  return createFileRegistry(set).getFile("test/ext.proto")!;
}

/** The routes under test: a stub AdminService plus reflection. */
function routes(router: ConnectRouter): void {
  router.service(AdminService, {
    listAgents: () =>
      create(ListAgentsResponseSchema, {
        agents: [{ host: { hostname: "web-1", os: "linux" }, pendingCommands: 2, collectors: ["cpu"] }],
      }),
  });
  registerReflection(router, [file_spectra_v1_admin_service, extensionFile()]);
}

type Req = MessageInitShape<typeof ServerReflectionRequestSchema>;

describe("registerReflection (in memory)", () => {
  const client = createClient(ServerReflection, createRouterTransport(routes));

  /** Sends all requests on one stream and returns the answers in order. */
  async function ask(...requests: Req[]): Promise<ServerReflectionResponse[]> {
    const out: ServerReflectionResponse[] = [];
    async function* input() {
      yield* requests;
    }
    for await (const res of client.serverReflectionInfo(input())) out.push(res);
    return out;
  }
  /** The file names in a file_descriptor_response, in order. */
  function fileNames(res: ServerReflectionResponse | undefined): string[] {
    if (res?.messageResponse.case !== "fileDescriptorResponse") {
      throw new Error(`not a file response: ${res?.messageResponse.case}`);
    }
    return res.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name);
  }
  const symbol = (value: string): Req => ({ messageRequest: { case: "fileContainingSymbol", value } });

  it("lists the given services and both reflection services", async () => {
    const [res] = await ask({ host: "h", messageRequest: { case: "listServices", value: "" } });
    expect(res?.validHost).toBe("h");
    expect(res?.originalRequest?.messageRequest.case).toBe("listServices");
    expect(res?.messageResponse.case).toBe("listServicesResponse");
    const list = res?.messageResponse.case === "listServicesResponse" ? res.messageResponse.value.service : [];
    expect(list.map((s) => s.name).sort()).toEqual([
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "spectra.v1.AdminService",
    ]);
  });

  it("answers file_by_filename with the file and all its transitive dependencies", async () => {
    const [res] = await ask({ messageRequest: { case: "fileByFilename", value: "spectra/v1/admin_service.proto" } });
    const names = fileNames(res);
    expect(names[0]).toBe("spectra/v1/admin_service.proto");
    expect(names.slice(1).sort()).toEqual([
      "google/protobuf/descriptor.proto",
      "google/protobuf/duration.proto",
      "google/protobuf/timestamp.proto",
      "spectra/v1/access_service.proto",
      "spectra/v1/agent_service.proto",
      "spectra/v1/diagnostics.proto",
      "spectra/v1/metrics.proto",
      "spectra/v1/options.proto",
    ]);
  });

  it("resolves services, methods, messages, fields, enums and values, with or without a leading dot", async () => {
    const cases: [string, string][] = [
      ["spectra.v1.AdminService", "spectra/v1/admin_service.proto"],
      [".spectra.v1.AdminService.ListAgents", "spectra/v1/admin_service.proto"],
      ["spectra.v1.AgentSummary.last_seen", "spectra/v1/admin_service.proto"],
      ["spectra.v1.HostInfo", "spectra/v1/agent_service.proto"],
      ["spectra.v1.LogLevel", "spectra/v1/diagnostics.proto"],
      ["spectra.v1.LOG_LEVEL_INFO", "spectra/v1/diagnostics.proto"],
      [".google.protobuf.Timestamp", "google/protobuf/timestamp.proto"],
      ["test.Outer.Inner", "test/ext.proto"],
      ["test.Outer.Inner.x", "test/ext.proto"],
      ["test.Outer.Kind", "test/ext.proto"],
      ["test.label", "test/ext.proto"],
      ["google.protobuf.DescriptorProto.ExtensionRange", "google/protobuf/descriptor.proto"],
      ["grpc.reflection.v1alpha.ServerReflection", "grpc/reflection/v1alpha/reflection.proto"],
    ];
    const answers = await ask(...cases.map(([s]) => symbol(s)));
    expect(answers.map((a) => fileNames(a)[0])).toEqual(cases.map(([, file]) => file));
    expect(fileNames(answers[7])).toEqual(["test/ext.proto", "google/protobuf/descriptor.proto"]);
  });

  it("answers extension queries", async () => {
    const extension = (extensionNumber: number): Req => ({
      messageRequest: {
        case: "fileContainingExtension",
        value: { containingType: "google.protobuf.MessageOptions", extensionNumber },
      },
    });
    const [found, missing, numbers, none, unknownType] = await ask(
      extension(50001),
      extension(50002),
      { messageRequest: { case: "allExtensionNumbersOfType", value: ".google.protobuf.MessageOptions" } },
      { messageRequest: { case: "allExtensionNumbersOfType", value: "spectra.v1.HostInfo" } },
      { messageRequest: { case: "allExtensionNumbersOfType", value: "no.such.Type" } },
    );
    expect(fileNames(found)[0]).toBe("test/ext.proto");
    expect(missing?.messageResponse).toMatchObject({ case: "errorResponse", value: { errorCode: 5 } });
    expect(numbers?.messageResponse).toMatchObject({
      case: "allExtensionNumbersResponse",
      // test/ext.proto's extension and spectra/v1/options.proto's `snapshot`
      value: { baseTypeName: "google.protobuf.MessageOptions", extensionNumber: [50001, 51001] },
    });
    expect(none?.messageResponse).toMatchObject({
      case: "allExtensionNumbersResponse",
      value: { extensionNumber: [] },
    });
    expect(unknownType?.messageResponse).toMatchObject({ case: "errorResponse", value: { errorCode: 5 } });
  });

  it("answers unknown names and empty requests with NOT_FOUND", async () => {
    const answers = await ask(
      symbol("spectra.v1.Nope"),
      { messageRequest: { case: "fileByFilename", value: "nope.proto" } },
      {},
    );
    for (const a of answers) {
      expect(a.messageResponse).toMatchObject({ case: "errorResponse", value: { errorCode: 5 } });
    }
  });

  it("serves v1alpha as well", async () => {
    const alpha = createClient(ServerReflectionAlpha, createRouterTransport(routes));
    async function* input() {
      yield { messageRequest: { case: "fileContainingSymbol" as const, value: "spectra.v1.AdminService" } };
    }
    const out = [];
    for await (const res of alpha.serverReflectionInfo(input())) out.push(res);
    expect(out[0]?.$typeName).toBe("grpc.reflection.v1alpha.ServerReflectionResponse");
    expect(out[0]?.messageResponse.case).toBe("fileDescriptorResponse");
  });
});

describe("registerReflection with the real buf curl", () => {
  const root = fileURLToPath(new URL("../../", import.meta.url));
  const buf = `${root}node_modules/.bin/buf`;
  const run = promisify(execFile);
  let server: SpectraListener;

  beforeAll(async () => {
    const handler = connectNodeAdapter({ routes });
    server = await listen({ host: "127.0.0.1", port: 0, handler, logger: silentLogger() });
  });
  afterAll(() => server.close(100));

  /** Runs `buf curl -v` from the repo root with a timeout; rejects with buf's stderr in the message. */
  async function curlVerbose(...args: string[]): Promise<{ stdout: string; stderr: string }> {
    try {
      return await run(buf, ["curl", "-v", "--timeout", "10s", ...args], { cwd: root, timeout: 20_000 });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`buf curl ${args.join(" ")}: ${e.stderr || e.message}`);
    }
  }
  const curl = async (...args: string[]): Promise<string> => (await curlVerbose(...args)).stdout;
  const listAgents = (): string => `${server.url}/spectra.v1.AdminService/ListAgents`;

  it("lists methods over h2c", async () => {
    const out = await curl("--http2-prior-knowledge", "--list-methods", server.url);
    const methods = out.trim().split("\n");
    expect(methods).toContain("spectra.v1.AdminService/ListAgents");
    expect(methods).toContain("spectra.v1.AdminService/WatchCommand");
    expect(methods).toContain("grpc.reflection.v1.ServerReflection/ServerReflectionInfo");
  });

  it("calls ListAgents over gRPC with the schema from reflection", async () => {
    const out = await curl("--http2-prior-knowledge", "--protocol", "grpc", "-d", "{}", listAgents());
    expect(JSON.parse(out)).toEqual({
      agents: [{ host: { hostname: "web-1", os: "linux" }, pendingCommands: 2, collectors: ["cpu"] }],
    });
  });

  it("works with the v1alpha reflection protocol and with the Connect protocol over h2c", async () => {
    const alpha = ["--http2-prior-knowledge", "--reflect-protocol", "grpc-v1alpha"];
    const methods = await curl(...alpha, "--list-methods", server.url);
    expect(methods).toContain("spectra.v1.AdminService/ListAgents");
    const out = await curl(...alpha, "--protocol", "connect", "-d", "{}", listAgents());
    expect(JSON.parse(out)).toMatchObject({ agents: [{ host: { hostname: "web-1" } }] });
  });

  it("switches to h2c by itself when reflecting, and serves Connect over HTTP/1.1 with a local schema", async () => {
    // buf curl cannot mix: with reflection it speaks h2c for the whole call, even without the flag.
    const reflected = await curlVerbose("-d", "{}", listAgents());
    expect(reflected.stderr).toMatch(/HTTP\/2\.0 200/);
    expect(JSON.parse(reflected.stdout)).toMatchObject({ agents: [{ host: { hostname: "web-1" } }] });
    // With the schema from proto/ there is no reflection, and the Connect call goes over HTTP/1.1.
    const h1 = await curlVerbose("--schema", "proto", "-d", "{}", listAgents());
    expect(h1.stderr).toMatch(/HTTP\/1\.1 200/);
    expect(JSON.parse(h1.stdout)).toMatchObject({ agents: [{ host: { hostname: "web-1" } }] });
  });
});
