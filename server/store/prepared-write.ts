import { isSnapshotCase } from "../tsdb/flatten/flatten.js";
import { envelopeKey, envelopeTimeMs } from "./envelope-key.js";
import type { BatchWrite } from "./store.js";
import { encodeBatch } from "./wal-payload.js";

/**
 * What a store writes for one batch, computed from it when Store.writeBatch is called: the store queues this, not
 * the batch, so the decoded messages are not kept alive while a group commit waits (they were most of what V8's
 * young-generation collections copied under load; docs/benchmarks.md, "Storage").
 */
export interface PreparedWrite {
  hostname: string;
  sessionId: string;
  sequence: bigint;
  receivedAtMs: number;
  /** The WAL row's payload (see encodeBatch). */
  wal: Uint8Array;
  /** How many envelopes the batch holds. */
  envelopeCount: number;
  /** The snapshot envelopes (see Store.listEnvelopes), as parallel columns; `bytes` are views into `wal`. */
  snapshots: { type: string[]; key: string[]; tsMs: number[]; bytes: Uint8Array[] };
}

/** Encodes a batch for storage (see PreparedWrite). */
export function prepareWrite(b: BatchWrite): PreparedWrite {
  const encoded = encodeBatch(b.hostname, b.envelopes, b.encoded);
  const snapshots: PreparedWrite["snapshots"] = { type: [], key: [], tsMs: [], bytes: [] };
  b.envelopes.forEach((env, i) => {
    if (env.payload.case === undefined || !isSnapshotCase(env.payload.case)) return;
    snapshots.type.push(env.type);
    snapshots.key.push(envelopeKey(env));
    snapshots.tsMs.push(envelopeTimeMs(env, b.receivedAtMs));
    snapshots.bytes.push(encoded.envelopes[i]!);
  });
  return {
    hostname: b.hostname,
    sessionId: b.sessionId,
    sequence: b.sequence,
    receivedAtMs: b.receivedAtMs,
    wal: encoded.wal,
    envelopeCount: encoded.envelopes.length,
    snapshots,
  };
}
