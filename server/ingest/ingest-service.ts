import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Logger } from "../../common/logger.js";
import { MetricEnvelopeSchema, type CollectorStatus, type MetricEnvelope } from "../../gen/spectra/v1/metrics_pb.js";
import { fastToBinary } from "../../common/proto/fast-encode.js";
import { InvalidInputError } from "../errors.js";
import type { BatchWriteResult, Store } from "../store/store.js";
import type { PreparedAppend, TsdbEngine } from "../tsdb/engine.js";
import type { Presence } from "../agents/presence.js";
import { typeForCase } from "./payload-types.js";
import { checkHostname } from "../agents/hostname.js";

/** Largest number of envelopes accepted in one batch. */
export const MAX_ENVELOPES_PER_BATCH = 10_000;

/** One batch as it arrives, through Connect or the legacy REST API. */
export interface IngestInput {
  hostname: string;
  /** Empty for legacy REST (no replay protection there). */
  sessionId: string;
  sequence: bigint;
  envelopes: MetricEnvelope[];
  collectorStatus: CollectorStatus[];
  /** Each envelope's binary encoding as it arrived (binary uploads), parallel to `envelopes`. */
  rawEnvelopes?: readonly Uint8Array[] | undefined;
}

/** What was done with a batch. */
export interface IngestResult {
  duplicate: boolean;
  stored: number;
  /** Envelopes without a known payload (unknown types), dropped as the original server did. */
  ignored: number;
}

/** The one write path for metrics, whichever door they came in by. */
export interface IngestService {
  /**
   * Validates and stores a batch; resolves only after it is committed. Rejects with InvalidInputError. Reads the
   * input's messages only during the call: what waits for the commit holds none of them.
   */
  ingest(input: IngestInput): Promise<IngestResult>;
}

/** Creates the ingest service. */
export function createIngestService(deps: {
  store: Store;
  tsdb: TsdbEngine;
  logger: Logger;
  clock: () => number;
  /** Told of every committed batch: the agent's contact, with its collector status. */
  presence?: Presence;
}): IngestService {
  const { store, tsdb, logger, clock, presence } = deps;
  /**
   * Validates the batch, resolves its samples to series and hands it to the store, synchronously; only numbers,
   * series entries and bytes wait for the commit (finish), not the decoded messages (see TsdbEngine.prepare).
   */
  const start = (input: IngestInput): Promise<IngestResult> => {
    checkHostname(input.hostname);
    if (input.envelopes.length > MAX_ENVELOPES_PER_BATCH) {
      throw new InvalidInputError(`batch holds ${input.envelopes.length} envelopes; at most ${MAX_ENVELOPES_PER_BATCH}`);
    }
    const now = clock();
    const kept: MetricEnvelope[] = [];
    const raw = input.rawEnvelopes !== undefined && input.rawEnvelopes.length === input.envelopes.length ? input.rawEnvelopes : undefined;
    const keptRaw: (Uint8Array | undefined)[] = [];
    let ignored = 0;
    input.envelopes.forEach((env, i) => {
      if (env.hostname !== "" && env.hostname !== input.hostname) {
        throw new InvalidInputError(`envelope ${i}: hostname "${env.hostname}" differs from the batch's "${input.hostname}"`);
      }
      if (env.payload.case === undefined) {
        ignored++;
        return;
      }
      const type = typeForCase(env.payload.case);
      if (env.type !== "" && env.type !== type && !(env.type === "updates" && type === "update_status")) {
        throw new InvalidInputError(`envelope ${i}: type "${env.type}" does not match its payload "${type}"`);
      }
      // the bytes as they arrived are the stored form only when nothing below changes the envelope
      keptRaw.push(raw && env.type === type && env.hostname === input.hostname && env.timestamp ? raw[i] : undefined);
      env.type = type;
      env.hostname = input.hostname;
      env.timestamp ??= timestampFromMs(now);
      kept.push(env);
    });
    if (ignored > 0) logger.info({ agent: input.hostname, ignored }, "ignored envelopes of unknown metric types");
    const encoded = keptRaw.map((b, i) => b ?? fastToBinary(MetricEnvelopeSchema, kept[i]!));
    const prepared = tsdb.prepare(input.hostname, kept, encoded);
    const written = store.writeBatch({
      hostname: input.hostname,
      sessionId: input.sessionId,
      sequence: input.sequence,
      envelopes: kept,
      collectorStatus: input.collectorStatus,
      receivedAtMs: now,
      encoded,
    });
    return finish(written, prepared, input.collectorStatus, ignored);
  };

  const finish = async (
    written: Promise<BatchWriteResult>,
    prepared: PreparedAppend,
    collectorStatus: CollectorStatus[],
    ignored: number,
  ): Promise<IngestResult> => {
    const r = await written;
    // Synchronously after the commit resolved: batches reach the head in WAL order.
    if (!r.duplicate) tsdb.appendPrepared(r.walId, prepared);
    // A replayed batch is contact too (the agent is there, resending what it spooled).
    presence?.contact(prepared.hostname, collectorStatus);
    return { duplicate: r.duplicate, stored: r.stored, ignored };
  };

  return {
    ingest(input) {
      try {
        return start(input);
      } catch (err) {
        return Promise.reject(err);
      }
    },
  };
}
