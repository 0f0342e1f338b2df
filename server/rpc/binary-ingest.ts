/**
 * The binary fast path for metric uploads. Connect decodes request messages with protobuf-es's reflection-based
 * fromBinary, the largest single cost of ingest once storage was made cheap. For binary requests to
 * AgentService/StreamMetrics and /PushMetrics (what every agent sends), the app routes to a second Connect handler
 * whose service descriptor is the same AgentService with the `batch` fields typed `bytes` (the same wire format:
 * an embedded message is length-delimited bytes). The handler gets the batch's raw bytes and decodes them with the
 * compiled decoder (common/proto/fast-decode.ts, checked field for field against fromBinary). JSON requests keep
 * the regular handler, so `buf curl` and JSON clients see no difference. Each envelope's bytes as they arrived are
 * kept beside the decoded batch (rawEnvelopesOf), so the store writes them without encoding the batch again.
 */
import { createFileRegistry, type DescService } from "@bufbuild/protobuf";
import { clone } from "@bufbuild/protobuf";
import { FieldDescriptorProto_Type, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import type { ServiceImpl } from "@connectrpc/connect";
import { fastFromBinary } from "../../common/proto/fast-decode.js";
import { AgentService, file_spectra_v1_agent_service } from "../../gen/spectra/v1/agent_service_pb.js";
import { MetricBatchSchema, type MetricBatch } from "../../gen/spectra/v1/metrics_pb.js";
import { envelopeSlices } from "../store/wal-payload.js";

const RAW_REQUESTS = new Set(["spectra.v1.StreamMetricsRequest", "spectra.v1.PushMetricsRequest"]);

/** AgentService with StreamMetricsRequest.batch and PushMetricsRequest.batch as bytes. */
export const RawBatchAgentService: DescService = (() => {
  const proto = clone(FileDescriptorProtoSchema, file_spectra_v1_agent_service.proto);
  for (const m of proto.messageType) {
    if (!RAW_REQUESTS.has(`${proto.package}.${m.name}`)) continue;
    const f = m.field.find((x) => x.name === "batch");
    if (!f) throw new Error(`${m.name} has no batch field`);
    f.type = FieldDescriptorProto_Type.BYTES;
    f.typeName = "";
  }
  const deps = new Map(file_spectra_v1_agent_service.dependencies.map((d) => [d.name + ".proto", d]));
  const registry = createFileRegistry(proto, (name) => deps.get(name) ?? deps.get(name.replace(/\.proto$/, "")));
  const svc = registry.getService(AgentService.typeName);
  if (!svc) throw new Error("AgentService missing from the rebuilt descriptor");
  return svc;
})();

const BINARY_TYPES = /^application\/(proto|connect\+proto|grpc|grpc\+proto|grpc-web|grpc-web\+proto)(;|$)/;
const PATHS = new Set([`/${AgentService.typeName}/StreamMetrics`, `/${AgentService.typeName}/PushMetrics`]);

/** True for a binary StreamMetrics/PushMetrics request (the ones the raw-batch handler serves). */
export function isBinaryMetricUpload(req: IncomingMessage | Http2ServerRequest): boolean {
  const path = (req.url ?? "").split("?")[0]!;
  return PATHS.has(path) && BINARY_TYPES.test(String(req.headers["content-type"] ?? ""));
}

const rawEnvelopes = new WeakMap<MetricBatch, Uint8Array[]>();

/** The bytes each envelope of `batch` arrived as, when it came through the binary path (views into the request). */
export function rawEnvelopesOf(batch: MetricBatch): Uint8Array[] | undefined {
  return rawEnvelopes.get(batch);
}

/** Wraps the regular implementation: decodes the raw batch bytes, then calls it. */
export function rawBatchImpl(impl: ServiceImpl<typeof AgentService>): Partial<ServiceImpl<DescService>> {
  const decode = (bytes: unknown) => {
    if (!(bytes instanceof Uint8Array) || bytes.length === 0) return undefined;
    const batch = fastFromBinary(MetricBatchSchema, bytes);
    const slices = envelopeSlices(bytes);
    if (slices && slices.length === batch.envelopes.length) rawEnvelopes.set(batch, slices);
    return batch;
  };
  return {
    streamMetrics(reqs: AsyncIterable<{ batch: Uint8Array }>, ctx: Parameters<typeof impl.streamMetrics>[1]) {
      // The decoded batch is not a local of the generator: a suspended generator keeps its locals, and this one is
      // suspended while the batch's commit is awaited (see startIngest in agent-service.ts).
      const request = (bytes: Uint8Array) => {
        const batch = decode(bytes);
        return { $typeName: "spectra.v1.StreamMetricsRequest", ...(batch ? { batch } : {}) } as never;
      };
      return impl.streamMetrics(
        (async function* () {
          for await (const r of reqs) yield request(r.batch);
        })(),
        ctx,
      );
    },
    pushMetrics(req: { batch: Uint8Array }, ctx: Parameters<typeof impl.pushMetrics>[1]) {
      const batch = decode(req.batch);
      return impl.pushMetrics({ $typeName: "spectra.v1.PushMetricsRequest", ...(batch ? { batch } : {}) } as never, ctx);
    },
  } as never;
}
