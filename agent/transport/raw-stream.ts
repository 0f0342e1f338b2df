import type { DescMessage, DescMethodClientStreaming, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type Interceptor } from "@connectrpc/connect";
import {
  createMethodSerializationLookup,
  createMethodUrl,
  encodeEnvelope,
  pipe,
  runStreamingCall,
  transformDecompressEnvelope,
  transformParseEnvelope,
  transformSplitEnvelope,
  type Compression,
  type UniversalClientFn,
} from "@connectrpc/connect/protocol";
import {
  createEndStreamSerialization,
  endStreamFlag,
  requestHeaderWithCompression,
  validateResponseWithCompression,
} from "@connectrpc/connect/protocol-connect";

/**
 * A Connect client-streaming call whose request messages are given as their encoded bytes, written to the HTTP
 * request as they come: each is enveloped (5 bytes: flags, big-endian length) and, from `compressMinBytes` on,
 * gzipped with the compressed flag set, exactly as connect-es writes them. What it leaves out is connect-es's
 * generic request pipeline: a chain of async generators per message (normalize, serialize with protobuf-es's
 * reflection, compress, envelope, join) around every 5 s batch, which the agent's interpreter-only JavaScript paid
 * for on every send (docs/benchmarks.md, "Agent footprint"). Everything else is connect-es's own code, so the
 * server sees the same request and the caller the same errors: the request headers (`requestHeaderWithCompression`:
 * content type, protocol version, timeout, encodings, user agent), interceptors, deadline and abort handling
 * (`runStreamingCall`), the HTTP client and its error mapping (the transport's universal client), and the response's
 * validation and parsing (status and content type, envelopes, decompression, end-of-stream message and its error).
 *
 * The @connectrpc/connect/protocol* entry points are internal API of connect-es ("does not follow semantic
 * versioning"): package.json pins connect-es to an exact version, and the tests in raw-stream.test.ts run this
 * against a real connect-node server.
 */
export interface RawStreamOptions {
  baseUrl: string;
  /** The HTTP client (connect-node's `createNodeHttpClient`, HTTP/2). */
  httpClient: UniversalClientFn;
  interceptors: Interceptor[];
  sendCompression: Compression | null;
  /** Messages of this many bytes or more are compressed (connect's `compressMinBytes`). */
  compressMinBytes: number;
  acceptCompression: Compression[];
  readMaxBytes: number;
  writeMaxBytes: number;
}

/** Per-call options, as connect's. */
export interface RawCallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** Sends `messages` (each one encoded request message) on a client stream and resolves with the single response. */
export type RawClientStreamFn = <I extends DescMessage, O extends DescMessage>(
  method: DescMethodClientStreaming<I, O>,
  messages: AsyncIterable<Uint8Array>,
  options?: RawCallOptions,
) => Promise<MessageShape<O>>;

/** Creates a {@link RawClientStreamFn} (Connect protocol, binary format). */
export function createRawClientStream(opt: RawStreamOptions): RawClientStreamFn {
  const endStreamSerialization = createEndStreamSerialization({});
  return async (method, messages, options = {}) => {
    const serialization = createMethodSerializationLookup(method, undefined, undefined, opt);
    const timeoutMs = options.timeoutMs === undefined || options.timeoutMs <= 0 ? undefined : options.timeoutMs;
    const res = await runStreamingCall<DescMessage, DescMessage>({
      interceptors: opt.interceptors,
      signal: options.signal,
      timeoutMs,
      req: {
        stream: true,
        service: method.parent,
        method,
        requestMethod: "POST",
        url: createMethodUrl(opt.baseUrl, method),
        header: requestHeaderWithCompression(method.methodKind, true, timeoutMs, undefined, opt.acceptCompression, opt.sendCompression, true),
        contextValues: createContextValues(),
        // runStreamingCall tells this iterable to stop (throw, return) when the call is aborted; it is never
        // iterated through the request (the body below reads `messages` itself).
        message: messages as unknown as AsyncIterable<MessageShape<DescMessage>>,
      },
      next: async (req) => {
        const uRes = await opt.httpClient({
          url: req.url,
          method: "POST",
          header: req.header,
          signal: req.signal,
          body: envelopes(messages, opt),
        });
        const { compression } = validateResponseWithCompression(method.methodKind, opt.acceptCompression, true, uRes.status, uRes.header);
        const trailer = new Headers();
        const parsed = pipe(
          uRes.body,
          transformSplitEnvelope(opt.readMaxBytes),
          transformDecompressEnvelope(compression ?? null, opt.readMaxBytes),
          transformParseEnvelope(serialization.getO(true), endStreamFlag, endStreamSerialization),
          { propagateDownStreamError: true },
        );
        // As connect's transport: the end-of-stream message carries the error or the trailers, and must come last
        // and once.
        async function* responseMessages(): AsyncGenerator<MessageShape<DescMessage>> {
          let endStreamReceived = false;
          for await (const chunk of parsed) {
            if (chunk.end) {
              if (endStreamReceived) throw new ConnectError("protocol error: received extra EndStreamResponse", Code.InvalidArgument);
              endStreamReceived = true;
              if (chunk.value.error) {
                const error = chunk.value.error;
                uRes.header.forEach((value, key) => error.metadata.append(key, value));
                throw error;
              }
              chunk.value.metadata.forEach((value, key) => trailer.set(key, value));
              continue;
            }
            if (endStreamReceived) throw new ConnectError("protocol error: received extra message after EndStreamResponse", Code.InvalidArgument);
            yield chunk.value;
          }
          if (!endStreamReceived) throw new ConnectError("protocol error: missing EndStreamResponse", Code.InvalidArgument);
        }
        return { ...req, header: uRes.header, trailer, message: responseMessages() };
      },
    });
    // As connect's client-streaming call: exactly one response message.
    let single: MessageShape<DescMessage> | undefined;
    let count = 0;
    for await (const message of res.message) {
      single = message;
      count++;
    }
    if (!single) throw new ConnectError("protocol error: missing response message", Code.Unimplemented);
    if (count > 1) throw new ConnectError("protocol error: received extra messages for client streaming method", Code.Unimplemented);
    return single as MessageShape<typeof method.output>;
  };
}

/**
 * The request body: each message enveloped as it arrives, compressed from `compressMinBytes` on. One generator
 * between the caller's messages and the HTTP/2 stream's writes (connect-node's universal client pulls the next
 * message once the previous one is written).
 */
async function* envelopes(messages: AsyncIterable<Uint8Array>, opt: RawStreamOptions): AsyncGenerator<Uint8Array> {
  for await (const message of messages) {
    if (message.byteLength > opt.writeMaxBytes) {
      throw new ConnectError(`message size ${message.byteLength} is larger than configured writeMaxBytes ${opt.writeMaxBytes}`, Code.ResourceExhausted);
    }
    if (opt.sendCompression && message.byteLength >= opt.compressMinBytes) {
      yield encodeEnvelope(COMPRESSED_FLAG, await opt.sendCompression.compress(message));
    } else {
      yield encodeEnvelope(0, message);
    }
  }
}

/** The envelope flag of a compressed message (connect's `compressedFlag`). */
const COMPRESSED_FLAG = 0b00000001;
