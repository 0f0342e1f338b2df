/**
 * Pre-encoded load for the ingest benchmark, so the load generator spends its CPU on sending, not on building
 * messages (protobuf-es encoding and flattening cost ~1 ms per 100-envelope batch, more than the server's share).
 *
 * A few "template" agents (SimAgent, see fleet.ts) each generate two 10-minute cycles of envelopes (120 ticks of
 * 5 s; the first cycle holds the hourly collectors too), cut into batches and encoded once: as MetricBatch bytes
 * (fields 4 and 5: envelopes and collector status) and as the same samples in VictoriaMetrics's import format.
 * Every simulated agent replays the cycles of one template with its own hostname, session, sequence numbers and
 * time: the bytes are copied and patched in place (timestamps shifted by whole 10-minute cycles plus the agent's
 * phase, the hostname's digits rewritten), so every batch sent is distinct, moves forward in time, and holds
 * exactly the samples the server's flattening counted when the pool was built.
 */
import { StreamMetricsRequestSchema } from "../../gen/spectra/v1/agent_service_pb.js";
import { requestWithBatch } from "../../agent/transport/sender.js";
import { encodeBatchMessage, SimAgent, TICK_MS, VmEncoder } from "./fleet.js";
import type { MessageShape } from "@bufbuild/protobuf";

export type VmFormat = "json" | "prom";

export const CYCLE_TICKS = 120;
export const CYCLE_SEC = (CYCLE_TICKS * TICK_MS) / 1000;
/** Cycles between two with the hourly collectors (update_status, applications). */
const HOURLY_EVERY = 3_600 / CYCLE_SEC;
/** Base time of the templates (shifted at send time). */
const BASE_MS = Date.UTC(2026, 0, 1);
const HOST_PREFIX = "bench-host-";
const HOST_DIGITS = 5;

interface PbTemplate {
  body: Uint8Array;
  /** Offsets of the 5-byte `seconds` varints of every Timestamp in body, and their values at BASE_MS. */
  tsOffsets: Int32Array;
  tsSeconds: Float64Array;
  /** Offsets of the hostname digits in body. */
  hostOffsets: Int32Array;
  samples: number;
  envelopes: number;
}

interface VmTemplate {
  body: Buffer;
  /** Offsets of the 13-digit millisecond timestamps, each with the index of its value in `tDistinct`. */
  tOffsets: Int32Array;
  tIndex: Int32Array;
  /** The distinct timestamps (one per envelope) at BASE_MS. */
  tDistinct: Float64Array;
  hostOffsets: Int32Array;
  samples: number;
}

interface Template {
  /** [cycle with hourly collectors, cycle without]. */
  pb: [PbTemplate[], PbTemplate[]];
  vm: [VmTemplate[], VmTemplate[]] | undefined;
}

export interface PoolOptions {
  templates: number;
  /** Envelope cap per batch (the agent's 100); 0: one 5 s tick per batch. */
  batchEnvelopes: number;
  vmFormat: VmFormat | undefined;
}

export interface PoolStats {
  templates: number;
  batchesPerCycle: number;
  samplesPerCycle: number;
  envelopesPerCycle: number;
  pbBytesPerCycle: number;
  vmBytesPerCycle: number;
  buildMs: number;
}

export function buildPool(opts: PoolOptions): { templates: Template[]; stats: PoolStats } {
  const t0 = performance.now();
  const templates: Template[] = [];
  let pbBytes = 0;
  let vmBytes = 0;
  let samples = 0;
  let envelopes = 0;
  let batches = 0;
  for (let m = 0; m < opts.templates; m++) {
    const agent = new SimAgent(m, BASE_MS, 1);
    const vmEnc = new VmEncoder();
    const cycles = [0, 1].map((c) => {
      const envs = [];
      for (let i = 0; i < CYCLE_TICKS; i++) envs.push(agent.collectTick());
      const flat = envs.flat();
      const groups = opts.batchEnvelopes > 0 ? chunk(flat, opts.batchEnvelopes) : envs.filter((e) => e.length > 0);
      const shiftSec = -c * CYCLE_SEC; // the second cycle is stored as if it were the first
      const pb: PbTemplate[] = [];
      const vm: VmTemplate[] = [];
      for (const g of groups) {
        const batch = agent.batchOf(g);
        const body = encodeBatchMessage({ ...batch, hostname: "", sessionId: "", sequence: 0n });
        const ts = timestampOffsets(body);
        pb.push({
          body,
          tsOffsets: Int32Array.from(ts.offsets),
          tsSeconds: Float64Array.from(ts.seconds, (s) => s + shiftSec),
          hostOffsets: hostDigitOffsets(body),
          samples: batch.samples,
          envelopes: g.length,
        });
        if (opts.vmFormat) {
          const enc = opts.vmFormat === "json" ? vmEnc.jsonLines(agent.hostname, g) : vmEnc.promText(agent.hostname, g);
          if (enc.samples !== batch.samples) throw new Error(`VM payload holds ${enc.samples} samples, the batch ${batch.samples}`);
          const body = Buffer.from(enc.body, "utf8");
          const t = opts.vmFormat === "json" ? jsonTimestampOffsets(body) : promTimestampOffsets(body);
          if (t.offsets.length !== (opts.vmFormat === "json" ? batch.samples : batch.samples)) {
            throw new Error(`found ${t.offsets.length} timestamps for ${batch.samples} samples`);
          }
          const distinct = [...new Set(t.ms)];
          const where = new Map(distinct.map((x, i) => [x, i]));
          vm.push({
            body,
            tOffsets: Int32Array.from(t.offsets),
            tIndex: Int32Array.from(t.ms, (x) => where.get(x)!),
            tDistinct: Float64Array.from(distinct, (x) => x + shiftSec * 1000),
            hostOffsets: hostDigitOffsets(body),
            samples: enc.samples,
          });
          if (m === 0) vmBytes += body.length;
        }
        if (m === 0) {
          pbBytes += body.length;
          samples += batch.samples;
          envelopes += g.length;
          batches++;
        }
      }
      return { pb, vm };
    });
    templates.push({
      pb: [cycles[0]!.pb, cycles[1]!.pb],
      vm: opts.vmFormat ? [cycles[0]!.vm, cycles[1]!.vm] : undefined,
    });
  }
  return {
    templates,
    stats: {
      templates: opts.templates,
      batchesPerCycle: batches / 2,
      samplesPerCycle: samples / 2,
      envelopesPerCycle: envelopes / 2,
      pbBytesPerCycle: pbBytes / 2,
      vmBytesPerCycle: vmBytes / 2,
      buildMs: performance.now() - t0,
    },
  };
}

function chunk<T>(xs: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

/** One simulated agent replaying a template. */
export class PoolAgent {
  readonly hostname: string;
  readonly sessionId: string;
  private readonly header: Buffer;
  private sequence = 0;
  private cycle = 0;
  private index = 0;
  private readonly digits: Buffer;

  constructor(
    readonly id: number,
    private readonly tpl: Template,
    /** Seconds added to the template times: run start − BASE plus this agent's phase. */
    private readonly offsetSec: number,
    runTag: string,
  ) {
    if (id >= 10 ** HOST_DIGITS) throw new Error(`at most ${10 ** HOST_DIGITS - 1} agents`);
    this.hostname = HOST_PREFIX + String(id).padStart(HOST_DIGITS, "0");
    this.digits = Buffer.from(String(id).padStart(HOST_DIGITS, "0"));
    this.sessionId = `bench-${runTag}-${id}`;
    const host = Buffer.from(this.hostname);
    const session = Buffer.from(this.sessionId);
    this.header = Buffer.concat([Buffer.from([0x0a, host.length]), host, Buffer.from([0x12, session.length]), session]);
  }

  /** Sim time (ms) of the first sample of the next batch. */
  get simTimeMs(): number {
    return BASE_MS + (this.offsetSec + this.cycle * CYCLE_SEC) * 1000;
  }

  /** The next batch as a StreamMetricsRequest (the agent's encoding: batch bytes as the `batch` field). */
  nextRequest(): { req: MessageShape<typeof StreamMetricsRequestSchema>; sequence: bigint; samples: number; envelopes: number } {
    const b = this.nextBatch();
    return { req: requestWithBatch(StreamMetricsRequestSchema, { data: b.data }), sequence: b.sequence, samples: b.samples, envelopes: b.envelopes };
  }

  /**
   * The next batch as MetricBatch bytes (what the agent spools and sends), with the template batch it was made from
   * and the seconds its times were shifted by (for caches of other encodings of the same template batch).
   */
  nextBatch(): { data: Buffer; sequence: bigint; samples: number; envelopes: number; template: object; shiftSec: number } {
    const t = this.currentPb();
    const shift = this.offsetSec + this.cycle * CYCLE_SEC;
    this.sequence++;
    const seq = varint(this.sequence);
    const hl = this.header.length + 1 + seq.length;
    const out = Buffer.allocUnsafe(hl + t.body.length);
    this.header.copy(out, 0);
    out[this.header.length] = 0x18; // sequence = 3, varint
    seq.copy(out, this.header.length + 1);
    out.set(t.body, hl);
    for (let i = 0; i < t.tsOffsets.length; i++) writeVarint5(out, hl + t.tsOffsets[i]!, t.tsSeconds[i]! + shift);
    for (let i = 0; i < t.hostOffsets.length; i++) this.digits.copy(out, hl + t.hostOffsets[i]!);
    const r = { data: out, sequence: BigInt(this.sequence), samples: t.samples, envelopes: t.envelopes, template: t, shiftSec: shift };
    this.advance();
    return r;
  }

  /** The next batch's samples as a VictoriaMetrics import body. */
  nextVmBody(): { body: Buffer; samples: number } {
    const cycles = this.tpl.vm;
    if (!cycles) throw new Error("the pool was built without VictoriaMetrics payloads");
    const t = cycles[this.cycle % HOURLY_EVERY === 0 ? 0 : 1][this.index]!;
    const shiftMs = (this.offsetSec + this.cycle * CYCLE_SEC) * 1000;
    const out = Buffer.allocUnsafe(t.body.length);
    t.body.copy(out);
    const digits = digitScratch(t.tDistinct.length);
    for (let i = 0; i < t.tDistinct.length; i++) writeDigits13(digits, i * 13, t.tDistinct[i]! + shiftMs);
    for (let i = 0; i < t.tOffsets.length; i++) {
      const src = t.tIndex[i]! * 13;
      const dst = t.tOffsets[i]!;
      for (let k = 0; k < 13; k++) out[dst + k] = digits[src + k]!;
    }
    for (let i = 0; i < t.hostOffsets.length; i++) this.digits.copy(out, t.hostOffsets[i]!);
    this.sequence++;
    this.advance();
    return { body: out, samples: t.samples };
  }

  private currentPb(): PbTemplate {
    return this.tpl.pb[this.cycle % HOURLY_EVERY === 0 ? 0 : 1][this.index]!;
  }

  private advance(): void {
    this.index++;
    if (this.index >= this.tpl.pb[this.cycle % HOURLY_EVERY === 0 ? 0 : 1].length) {
      this.index = 0;
      this.cycle++;
    }
  }
}

/** Simulated agents over a pool: agent j replays template j mod M, with its own phase (0–4 s) on the tick grid. */
export function poolAgents(templates: Template[], n: number, runStartMs: number, runTag: string): PoolAgent[] {
  const base = Math.round((runStartMs - BASE_MS) / 1000);
  return Array.from({ length: n }, (_, j) => new PoolAgent(j, templates[j % templates.length]!, base + ((j * 7) % 5), runTag));
}

function varint(n: number): Buffer {
  const b: number[] = [];
  while (n > 0x7f) {
    b.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  b.push(n);
  return Buffer.from(b);
}

function writeVarint5(buf: Uint8Array, off: number, v: number): void {
  // seconds since 1970 between 2^28 and 2^35: always 5 bytes
  buf[off] = (v & 0x7f) | 0x80;
  buf[off + 1] = ((v >>> 7) & 0x7f) | 0x80;
  buf[off + 2] = ((v >>> 14) & 0x7f) | 0x80;
  buf[off + 3] = ((v >>> 21) & 0x7f) | 0x80;
  buf[off + 4] = Math.floor(v / 2 ** 28) & 0x7f;
}

let scratch = new Uint8Array(13 * 256);
function digitScratch(n: number): Uint8Array {
  if (scratch.length < n * 13) scratch = new Uint8Array(n * 13 * 2);
  return scratch;
}

function writeDigits13(buf: Uint8Array, off: number, v: number): void {
  let lo = v % 1e7;
  let hi = (v - lo) / 1e7;
  for (let i = 12; i >= 6; i--) {
    buf[off + i] = 48 + (lo % 10);
    lo = (lo - (lo % 10)) / 10;
  }
  for (let i = 5; i >= 0; i--) {
    buf[off + i] = 48 + (hi % 10);
    hi = (hi - (hi % 10)) / 10;
  }
}

function hostDigitOffsets(body: Uint8Array): Int32Array {
  const b = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const out: number[] = [];
  for (let i = b.indexOf(HOST_PREFIX); i >= 0; i = b.indexOf(HOST_PREFIX, i + 1)) out.push(i + HOST_PREFIX.length);
  return Int32Array.from(out);
}

function readVarint(b: Uint8Array, pos: number): [number, number] {
  let v = 0;
  let mul = 1;
  for (;;) {
    const x = b[pos++]!;
    v += (x & 0x7f) * mul;
    if (x < 0x80) return [v, pos];
    mul *= 128;
  }
}

/**
 * Offsets of the `seconds` varint of every Timestamp in a MetricBatch body: envelopes (4) → timestamp (2) → seconds
 * (1), and collector_status (5) → last_success (5) → seconds (1).
 */
function timestampOffsets(body: Uint8Array): { offsets: number[]; seconds: number[] } {
  const offsets: number[] = [];
  const seconds: number[] = [];
  const walk = (start: number, end: number, path: number[]) => {
    let pos = start;
    while (pos < end) {
      let tag;
      [tag, pos] = readVarint(body, pos);
      const field = Math.floor(tag / 8);
      const wt = tag & 7;
      if (wt === 0) {
        const at = pos;
        let v;
        [v, pos] = readVarint(body, pos);
        if (path.length === 2 && field === 1) {
          if (pos - at !== 5) throw new Error(`a timestamp's seconds take ${pos - at} bytes, not 5`);
          offsets.push(at);
          seconds.push(v);
        }
      } else if (wt === 1) pos += 8;
      else if (wt === 5) pos += 4;
      else if (wt === 2) {
        let len;
        [len, pos] = readVarint(body, pos);
        const p = [...path, field];
        const isTs = (p.length === 2 && p[0] === 4 && p[1] === 2) || (p.length === 2 && p[0] === 5 && p[1] === 5);
        if ((p.length === 1 && (field === 4 || field === 5)) || isTs) walk(pos, pos + len, p);
        pos += len;
      } else throw new Error(`unexpected wire type ${wt}`);
    }
  };
  walk(0, body.length, []);
  return { offsets, seconds };
}

function jsonTimestampOffsets(body: Buffer): { offsets: number[]; ms: number[] } {
  const offsets: number[] = [];
  const ms: number[] = [];
  const key = Buffer.from('"timestamps":[');
  for (let i = body.indexOf(key); i >= 0; i = body.indexOf(key, i + 1)) {
    let p = i + key.length;
    for (;;) {
      offsets.push(p);
      ms.push(Number(body.toString("latin1", p, p + 13)));
      p += 13;
      if (body[p] === 0x5d) break; // ]
      if (body[p] !== 0x2c) throw new Error("timestamps are not 13 digits");
      p++;
    }
  }
  return { offsets, ms };
}

function promTimestampOffsets(body: Buffer): { offsets: number[]; ms: number[] } {
  const offsets: number[] = [];
  const ms: number[] = [];
  for (let end = body.indexOf(0x0a); end >= 0; end = body.indexOf(0x0a, end + 1)) {
    offsets.push(end - 13);
    ms.push(Number(body.toString("latin1", end - 13, end)));
  }
  return { offsets, ms };
}
