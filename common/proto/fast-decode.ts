/**
 * A compiled binary Protobuf decoder for protobuf-es v2 messages, the counterpart of fast-encode.ts.
 *
 * protobuf-es's fromBinary creates each message through its reflection layer and resolves every field by number
 * at run time. This decoder builds, once per message type, a table from field number to a reader that stores the
 * value straight into a plain message object shaped exactly as protobuf-es shapes it (`$typeName`, zero values
 * for implicit fields, `undefined` for unset optional and message fields, `{ case: undefined }` for oneofs, `[]`
 * for lists, `{}` for maps, bigint for 64-bit integers). Packed and unpacked repeated scalars are both accepted;
 * a singular message field seen twice is merged, as the specification says. Unknown fields are skipped (not
 * kept). Malformed input throws an Error, never reads out of bounds.
 */
import { ScalarType, type DescField, type DescMessage, type MessageShape } from "@bufbuild/protobuf";

const PRESENCE_IMPLICIT = 2;

class Reader {
  pos = 0;
  readonly view: DataView;
  constructor(
    readonly buf: Uint8Array,
    readonly end: number,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** A varint as a number; exact up to 2^53, the high bits of larger values are lost (use varint64). */
  uint(): number {
    const b = this.buf;
    let p = this.pos;
    if (p >= this.end) throw truncated();
    let x = b[p++]!;
    if (x < 0x80) {
      this.pos = p;
      return x;
    }
    x &= 0x7f;
    let mul = 0x80;
    for (let i = 1; i < 10; i++) {
      if (p >= this.end) throw truncated();
      const c = b[p++]!;
      x += (c & 0x7f) * mul;
      mul *= 0x80;
      if (c < 0x80) {
        this.pos = p;
        return x;
      }
    }
    throw new Error("invalid varint");
  }

  /** A varint as an unsigned 64-bit bigint. */
  varint64(): bigint {
    const b = this.buf;
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw truncated();
      const c = b[this.pos++]!;
      if (shift < 28) lo |= (c & 0x7f) << shift;
      else if (shift === 28) {
        lo |= (c & 0x0f) << 28;
        hi |= (c & 0x7f) >> 4;
      } else hi |= (c & 0x7f) << (shift - 32);
      shift += 7;
      if (c < 0x80) return hi === 0 ? BigInt(lo >>> 0) : (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
    }
    throw new Error("invalid varint");
  }

  /** int32/enum varints: the low 32 bits, signed. */
  int32(): number {
    const b = this.buf;
    let x = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw truncated();
      const c = b[this.pos++]!;
      if (shift < 32) x |= (c & 0x7f) << shift;
      shift += 7;
      if (c < 0x80) return x | 0;
    }
    throw new Error("invalid varint");
  }

  need(n: number): void {
    if (this.pos + n > this.end) throw truncated();
  }

  lenEnd(): number {
    const len = this.uint();
    const end = this.pos + len;
    if (end > this.end) throw truncated();
    return end;
  }

  skip(wt: number): void {
    switch (wt) {
      case 0:
        this.uint();
        return;
      case 1:
        this.need(8);
        this.pos += 8;
        return;
      case 2:
        this.pos = this.lenEnd();
        return;
      case 5:
        this.need(4);
        this.pos += 4;
        return;
      default:
        throw new Error(`unsupported wire type ${wt}`);
    }
  }
}

function truncated(): Error {
  return new Error("premature end of input");
}

const utf8 = new TextDecoder("utf-8", { fatal: false });

/**
 * Strings up to this many bytes are looked up in a small cache before a new string is made. Metric streams repeat
 * the same short strings in every batch (host names, payload types, devices, interfaces, mounts, process and
 * container names), so most decoded strings are the cached ones: no allocation, and the string's hash (computed
 * once, when a Map first uses it) is kept.
 */
const CACHED_STRING_MAX = 48;
const STRING_CACHE_SIZE = 4096; // a power of two; direct-mapped: a colliding string replaces the entry
const stringCache: string[] = new Array<string>(STRING_CACHE_SIZE).fill("");

function readString(r: Reader): string {
  const end = r.lenEnd();
  const b = r.buf;
  const start = r.pos;
  r.pos = end;
  const len = end - start;
  if (len === 0) return "";
  if (len <= CACHED_STRING_MAX) {
    let h = 0x811c9dc5 ^ len; // FNV-1a over the bytes; ASCII only (others take the decoder below)
    let ascii = true;
    for (let p = start; p < end; p++) {
      const c = b[p]!;
      if (c >= 0x80) {
        ascii = false;
        break;
      }
      h = Math.imul(h ^ c, 0x01000193);
    }
    if (ascii) {
      const slot = (h >>> 0) & (STRING_CACHE_SIZE - 1);
      const cached = stringCache[slot]!;
      if (cached.length === len) {
        let same = true;
        for (let i = 0; i < len; i++) {
          if (cached.charCodeAt(i) !== b[start + i]) {
            same = false;
            break;
          }
        }
        if (same) return cached;
      }
      const s = utf8.decode(b.subarray(start, end));
      stringCache[slot] = s;
      return s;
    }
  }
  return utf8.decode(b.subarray(start, end));
}

type ScalarReader = (r: Reader) => unknown;

function scalarReader(t: ScalarType): ScalarReader {
  switch (t) {
    case ScalarType.DOUBLE:
      return (r) => {
        r.need(8);
        const v = r.view.getFloat64(r.pos, true);
        r.pos += 8;
        return v;
      };
    case ScalarType.FLOAT:
      return (r) => {
        r.need(4);
        const v = r.view.getFloat32(r.pos, true);
        r.pos += 4;
        return v;
      };
    case ScalarType.INT64:
      return (r) => BigInt.asIntN(64, r.varint64());
    case ScalarType.UINT64:
      return (r) => r.varint64();
    case ScalarType.SINT64:
      return (r) => {
        const u = r.varint64();
        return (u >> 1n) ^ -(u & 1n);
      };
    case ScalarType.FIXED64:
      return (r) => {
        r.need(8);
        const v = r.view.getBigUint64(r.pos, true);
        r.pos += 8;
        return v;
      };
    case ScalarType.SFIXED64:
      return (r) => {
        r.need(8);
        const v = r.view.getBigInt64(r.pos, true);
        r.pos += 8;
        return v;
      };
    case ScalarType.INT32:
      return (r) => r.int32();
    case ScalarType.UINT32:
      return (r) => r.int32() >>> 0;
    case ScalarType.SINT32:
      return (r) => {
        const u = r.int32() >>> 0;
        return (u >>> 1) ^ -(u & 1);
      };
    case ScalarType.FIXED32:
      return (r) => {
        r.need(4);
        const v = r.view.getUint32(r.pos, true);
        r.pos += 4;
        return v;
      };
    case ScalarType.SFIXED32:
      return (r) => {
        r.need(4);
        const v = r.view.getInt32(r.pos, true);
        r.pos += 4;
        return v;
      };
    case ScalarType.BOOL:
      return (r) => r.uint() !== 0;
    case ScalarType.STRING:
      return readString;
    case ScalarType.BYTES:
      return (r) => {
        const end = r.lenEnd();
        const v = r.buf.subarray(r.pos, end);
        r.pos = end;
        return v;
      };
  }
}

function zeroOf(t: ScalarType): unknown {
  switch (t) {
    case ScalarType.STRING:
      return "";
    case ScalarType.BYTES:
      return new Uint8Array(0);
    case ScalarType.BOOL:
      return false;
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return 0n;
    default:
      return 0;
  }
}

/** zeroOf as JavaScript source, for zeroFactory. */
function zeroSource(t: ScalarType): string {
  const z = zeroOf(t);
  return z instanceof Uint8Array ? "new Uint8Array(0)" : typeof z === "bigint" ? "0n" : JSON.stringify(z);
}

/**
 * A function returning a new message of `typeName` with every implicit field at its default: one object literal,
 * compiled once per type. V8 gives a literal's object all its properties in the object itself; adding them one by
 * one to `{ $typeName }` (as this decoder first did) went through a separate property array regrown every few
 * fields, which made a 100-byte envelope cost ~1.8 kB of garbage. The names and values come from the descriptors
 * (names quoted with JSON.stringify, values from zeroSource and fixed literals), never from decoded input.
 */
function zeroFactory(typeName: string, defaults: ReadonlyArray<readonly [string, string]>): () => Record<string, unknown> {
  const props = [`$typeName: ${JSON.stringify(typeName)}`, ...defaults.map(([k, v]) => `${JSON.stringify(k)}: ${v}`)];
  return new Function(`return function zero() { return { ${props.join(", ")} }; };`)() as () => Record<string, unknown>;
}

/** Reads one field occurrence (the tag already consumed) into `msg`. */
type FieldReader = (r: Reader, msg: Record<string, unknown>, wt: number) => void;

interface Plan {
  typeName: string;
  /** Field readers indexed by field number (sparse). */
  readers: (FieldReader | undefined)[];
  /** Builds a message with every field at its default. */
  zero: () => Record<string, unknown>;
}

const plans = new Map<string, Plan>();

function planFor(desc: DescMessage): Plan {
  let plan = plans.get(desc.typeName);
  if (plan) return plan;
  const readers: (FieldReader | undefined)[] = [];
  /** Each implicit field's name and its default as JavaScript source (see zeroFactory). */
  const defaults: Array<[string, string]> = [];
  plan = { typeName: desc.typeName, readers, zero: () => ({}) };
  plans.set(desc.typeName, plan); // before building: recursive types refer to it
  for (const o of desc.oneofs) defaults.push([o.localName, "{ case: undefined }"]);
  for (const f of desc.fields) {
    readers[f.number] = fieldReader(f);
    if (f.oneof) continue;
    switch (f.fieldKind) {
      case "scalar":
        if (f.presence === PRESENCE_IMPLICIT) {
          defaults.push([f.localName, zeroSource(f.scalar)]);
        }
        break;
      case "enum":
        if (f.presence === PRESENCE_IMPLICIT) defaults.push([f.localName, "0"]);
        break;
      case "list":
        defaults.push([f.localName, "[]"]);
        break;
      case "map":
        defaults.push([f.localName, "{}"]);
        break;
      case "message":
        break; // undefined until set
    }
  }
  plan.zero = zeroFactory(desc.typeName, defaults);
  return plan;
}

function readMessage(r: Reader, plan: Plan, end: number, into?: Record<string, unknown>): Record<string, unknown> {
  const msg = into ?? plan.zero();
  const readers = plan.readers;
  while (r.pos < end) {
    const tag = r.uint();
    const no = Math.floor(tag / 8);
    const wt = tag & 7;
    if (no === 0) throw new Error("invalid field number 0");
    const read = readers[no];
    if (read) read(r, msg, wt);
    else r.skip(wt);
    if (r.pos > end) throw truncated();
  }
  return msg;
}

/** A length-delimited sub-message; readMessage checks after each field that it did not run past its end. */
function subMessage(r: Reader, desc: DescMessage, into?: Record<string, unknown>): Record<string, unknown> {
  const end = r.lenEnd();
  const m = readMessage(r, planFor(desc), end, into);
  if (r.pos !== end) throw truncated();
  return m;
}

function checkWire(f: DescField, wt: number, want: number): void {
  if (wt !== want) throw new Error(`field ${f.name}: wire type ${wt}, expected ${want}`);
}

function wireTypeOf(t: ScalarType): number {
  switch (t) {
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return 1;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return 5;
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return 2;
    default:
      return 0;
  }
}

function fieldReader(f: DescField): FieldReader {
  const name = f.localName;
  const oneof = f.oneof?.localName;
  const set = oneof
    ? (msg: Record<string, unknown>, v: unknown) => (msg[oneof] = { case: name, value: v })
    : (msg: Record<string, unknown>, v: unknown) => (msg[name] = v);
  switch (f.fieldKind) {
    case "scalar":
    case "enum": {
      const t = f.fieldKind === "enum" ? ScalarType.INT32 : f.scalar;
      const read = scalarReader(t);
      const wt0 = wireTypeOf(t);
      return (r, msg, wt) => {
        checkWire(f, wt, wt0);
        set(msg, read(r));
      };
    }
    case "message": {
      const sub = f.message;
      return (r, msg, wt) => {
        checkWire(f, wt, 2);
        const prev = oneof ? (msg[oneof] as { case?: string; value?: unknown }) : undefined;
        const existing = oneof ? (prev?.case === name ? prev.value : undefined) : msg[name];
        set(msg, subMessage(r, sub, existing as Record<string, unknown> | undefined));
      };
    }
    case "list": {
      if (f.listKind === "message") {
        const sub = f.message;
        return (r, msg, wt) => {
          checkWire(f, wt, 2);
          (msg[name] as unknown[]).push(subMessage(r, sub));
        };
      }
      const t = f.listKind === "enum" ? ScalarType.INT32 : f.scalar;
      const read = scalarReader(t);
      const wt0 = wireTypeOf(t);
      return (r, msg, wt) => {
        const list = msg[name] as unknown[];
        if (wt === 2 && wt0 !== 2) {
          const end = r.lenEnd();
          while (r.pos < end) list.push(read(r));
          if (r.pos !== end) throw truncated();
          return;
        }
        checkWire(f, wt, wt0);
        list.push(read(r));
      };
    }
    case "map": {
      const readKey = scalarReader(f.mapKey);
      const keyWt = wireTypeOf(f.mapKey);
      const valueKind = f.mapKind;
      const valueScalar = f.mapKind === "scalar" ? f.scalar : f.mapKind === "enum" ? ScalarType.INT32 : undefined;
      const readValue = valueScalar !== undefined ? scalarReader(valueScalar) : undefined;
      const valueWt = valueScalar !== undefined ? wireTypeOf(valueScalar) : 2;
      const sub = f.mapKind === "message" ? f.message : undefined;
      const keyZero = zeroOf(f.mapKey);
      return (r, msg, wt) => {
        checkWire(f, wt, 2);
        const end = r.lenEnd();
        let key: unknown = keyZero;
        let value: unknown;
        while (r.pos < end) {
          const tag = r.uint();
          const no = Math.floor(tag / 8);
          const w = tag & 7;
          if (no === 1 && w === keyWt) key = readKey(r);
          else if (no === 2 && w === valueWt) value = sub ? subMessage(r, sub) : readValue!(r);
          else r.skip(w);
        }
        if (r.pos !== end) throw truncated();
        if (value === undefined) value = sub ? planFor(sub).zero() : valueKind === "enum" ? 0 : zeroOf(valueScalar!);
        (msg[name] as Record<string, unknown>)[String(key)] = value;
      };
    }
  }
}

/** Decodes binary wire format into a message equal to what protobuf-es fromBinary gives (unknown fields dropped). */
export function fastFromBinary<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array): MessageShape<Desc> {
  const r = new Reader(bytes, bytes.length);
  return readMessage(r, planFor(schema), bytes.length) as unknown as MessageShape<Desc>;
}
