/**
 * Turns a MetricEnvelope into series samples, driven only by the Protobuf descriptors and the
 * `spectra.v1` custom options (proto/spectra/v1/options.proto), so a new collector needs no code here.
 *
 * Rules, applied to the payload message of the envelope's `payload` oneof (type name = the oneof field's
 * proto name, e.g. "disk_io", see server/ingest/payload-types.ts):
 *
 * - Every numeric scalar field (double, float, [s|u]int32/64, [s]fixed32/64; 64-bit values arrive as
 *   bigint and become Number, losing precision above 2^53) and every bool (0/1) is a sample of metric
 *   `<type>.<field>` (proto field names, snake_case), e.g. `cpu.usage`, `memory.ram_used`.
 * - A string or integer field with `(spectra.v1.series_label) = true` is a label, not a sample:
 *   label name = field name, value = the field value as a string (an unset optional label is "").
 *   Other string and bytes fields, and enum fields, produce nothing (they stay in the stored envelope).
 * - An `optional` field that is not set yields NaN in `values` (the caller skips NaN).
 * - Repeated scalar field: one group per element, with the label `<series_key_label or "index">` = the
 *   element index, metric `<type>.<field>` (e.g. `cpu.cores{core="0"}`).
 * - Map field with scalar values: one group per entry, label `<series_key_label or "key">` = the map key,
 *   metric `<type>.<field>` (e.g. `process_list.processes_by_state{state="R"}`).
 * - Repeated message field (and map of messages): each element is its own label set: the parent's labels
 *   plus the element's `series_label` fields (plus the index / map key label, when the field sets
 *   `series_key_label`, when it is a map, or when the element has no label of its own — otherwise all
 *   elements would collide); the element's numbers are metrics `<type>.<field>.<subfield>`
 *   (e.g. `container_list.containers.cpu_percent{name="web",source="docker"}`).
 * - Singular nested message field: its numbers join the parent's group as `<type>.<field>.<subfield>`
 *   (NaN when the message is unset); its `series_label` annotations are ignored (they would split the
 *   parent's group); its own lists and maps become groups as above, with the parent's labels.
 * - A field with `(spectra.v1.series_skip) = true` produces nothing, nor does anything under it.
 *   google.protobuf.Timestamp fields produce nothing.
 * - A group is emitted only when its message shape has at least one metric (a list of services, which have
 *   only labels and strings, produces no groups).
 *
 * Annotation mistakes (a label on a double, a label name used twice in one label set, a oneof inside a
 * payload, unbounded recursion) throw when the type's plan is first built; the test that walks every payload
 * case catches them in CI.
 *
 * Performance: a plan per payload type is built once from the descriptors (lazily, cached). It holds the
 * property names (`localName`) to read, the frozen metric-name arrays and the label layout, so the hot path
 * only reads properties, converts numbers and builds the key from the label values.
 */
import { getOption, ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { MetricEnvelopeSchema, type MetricEnvelope } from "../../../gen/spectra/v1/metrics_pb.js";
import { series_key_label, series_label, series_skip, snapshot } from "../../../gen/spectra/v1/options_pb.js";
import { typeForCase, type PayloadCase } from "../../ingest/payload-types.js";

/** One label set of one envelope, with its samples. */
export interface SeriesGroup {
  /** Identifies this label set within a host: type plus label values, e.g. "disk\u0000/home". Equal label sets ⇒ equal keys. */
  key: string;
  /** Labels sorted by name (no host label; the host is kept separately). */
  labels: ReadonlyArray<readonly [name: string, value: string]>;
  /** Metric names, parallel to `values`. One frozen array per message shape (not allocated per envelope). */
  metrics: readonly string[];
  /** Sample values parallel to `metrics`; NaN where an optional field is absent (the caller skips NaN). */
  values: number[];
}

// ---------------------------------------------------------------------------------------------------------
// Plan

/** Label slot sources (see GroupShape.labelSrc). */
const SRC_KEY = -1;
const SRC_OWN_BASE = -2;

/** One kind of group: fixed metric names and label names. */
interface GroupShape {
  readonly metrics: readonly string[];
  /** Label names, sorted. */
  readonly labelNames: readonly string[];
  /**
   * Where each sorted label slot's value comes from: `>= 0` the parent group's label value at that index,
   * SRC_KEY the element index or map key, `SRC_OWN_BASE - i` own label field `i`.
   */
  readonly labelSrc: readonly number[];
  /** Start of the key; the label values follow, each preceded by "\0". Set after the whole type is planned. */
  keyPrefix: string;
}

interface LabelField {
  readonly prop: string;
}

const enum ChildKind {
  List,
  Map,
  MessageList,
  MessageMap,
  Single,
}

type Child =
  | { readonly kind: ChildKind.List | ChildKind.Map; readonly prop: string; readonly shape: GroupShape }
  | { readonly kind: ChildKind.MessageList | ChildKind.MessageMap; readonly prop: string; readonly plan: MessagePlan }
  | { readonly kind: ChildKind.Single; readonly prop: string; readonly body: Body };

/** What to read from one message: numbers into the current group, and the groups below it. */
interface Body {
  /** Numeric and bool fields, in metric order. */
  readonly numProps: readonly string[];
  /** Singular nested messages whose numbers follow numProps (in order), `width` values each. */
  readonly singles: ReadonlyArray<{ readonly prop: string; readonly body: Body; readonly width: number }>;
  /** Fields that make groups of their own (including singular messages that contain such fields). */
  readonly children: readonly Child[];
}

/** A message in one context (metric prefix and inherited labels): its own group and what is below it. */
interface MessagePlan {
  readonly shape: GroupShape;
  readonly ownLabels: readonly LabelField[];
  readonly body: Body;
}

/** The plan of one payload type. */
interface TypePlan {
  readonly type: string;
  readonly root: MessagePlan;
  /** Every group shape of this type, for describeSeries. */
  readonly shapes: readonly GroupShape[];
}

const EMPTY_STRINGS: readonly string[] = Object.freeze([]);
const EMPTY_LABELS: ReadonlyArray<readonly [string, string]> = Object.freeze([]);
const MAX_DEPTH = 8;

const NUMERIC_SCALARS = new Set<ScalarType>([
  ScalarType.DOUBLE,
  ScalarType.FLOAT,
  ScalarType.INT64,
  ScalarType.UINT64,
  ScalarType.INT32,
  ScalarType.FIXED64,
  ScalarType.FIXED32,
  ScalarType.UINT32,
  ScalarType.SFIXED32,
  ScalarType.SFIXED64,
  ScalarType.SINT32,
  ScalarType.SINT64,
  ScalarType.BOOL,
]);
const LABEL_SCALARS = new Set<ScalarType>([
  ScalarType.STRING,
  ScalarType.INT64,
  ScalarType.UINT64,
  ScalarType.INT32,
  ScalarType.FIXED64,
  ScalarType.FIXED32,
  ScalarType.UINT32,
  ScalarType.SFIXED32,
  ScalarType.SFIXED64,
  ScalarType.SINT32,
  ScalarType.SINT64,
]);
const SKIPPED_MESSAGES = new Set(["google.protobuf.Timestamp"]);

class PlanBuilder {
  readonly shapes: GroupShape[] = [];
  constructor(readonly type: string) {}

  private fail(field: DescField, what: string): never {
    throw new Error(`flatten ${this.type}: ${field.parent.typeName}.${field.name}: ${what}`);
  }

  private shape(metrics: string[], inherited: readonly string[], extra: ReadonlyArray<readonly [name: string, src: number]>, where: string): GroupShape {
    const slots: Array<[string, number]> = inherited.map((n, i) => [n, i]);
    for (const [name, src] of extra) {
      if (slots.some(([n]) => n === name)) throw new Error(`flatten ${this.type}: ${where}: label "${name}" is used twice in one label set`);
      slots.push([name, src]);
    }
    slots.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const s: GroupShape = {
      metrics: Object.freeze(metrics),
      labelNames: Object.freeze(slots.map(([n]) => n)),
      labelSrc: Object.freeze(slots.map(([, src]) => src)),
      keyPrefix: this.type,
    };
    this.shapes.push(s);
    return s;
  }

  /** Plans `msg` as its own label set (a payload, or an element of a repeated message field / map). */
  message(msg: DescMessage, prefix: string, inherited: readonly string[], keyLabel: string | undefined, depth: number): MessagePlan {
    if (depth > MAX_DEPTH) throw new Error(`flatten ${this.type}: ${msg.typeName}: nested deeper than ${MAX_DEPTH} (recursive message?)`);
    const ownLabels: LabelField[] = [];
    const extra: Array<readonly [string, number]> = [];
    for (const f of msg.fields) {
      if (!getOption(f, series_label) || getOption(f, series_skip)) continue;
      if (f.fieldKind !== "scalar" || !LABEL_SCALARS.has(f.scalar)) this.fail(f, "series_label is only allowed on singular string and integer fields");
      if (f.oneof) this.fail(f, "series_label on a oneof member is not supported");
      extra.push([f.name, SRC_OWN_BASE - ownLabels.length]);
      ownLabels.push({ prop: f.localName });
    }
    if (keyLabel !== undefined) extra.push([keyLabel, SRC_KEY]);
    const metrics: string[] = [];
    // The body's children need this message's label names (in the shape's sorted order); the shape itself
    // is listed before the shapes of its children.
    const at = this.shapes.length;
    const body = this.body(msg, prefix, sortedNames(inherited, extra), metrics, true, depth);
    const shape = this.shape(metrics, inherited, extra, msg.typeName);
    this.shapes.splice(at, 0, this.shapes.pop()!);
    return { shape, ownLabels, body };
  }

  /** Plans the fields of `msg`: numbers appended to `metrics`, groups below it with labels `labels`. */
  private body(msg: DescMessage, prefix: string, labels: readonly string[], metrics: string[], ownGroup: boolean, depth: number): Body {
    const numProps: string[] = [];
    const singles: Array<{ prop: string; body: Body; width: number }> = [];
    const children: Child[] = [];
    const nestedMetrics: string[][] = [];
    for (const f of msg.fields) {
      if (getOption(f, series_skip)) continue;
      const isLabel = getOption(f, series_label);
      const keyLabel = getOption(f, series_key_label);
      if (keyLabel !== "" && f.fieldKind !== "list" && f.fieldKind !== "map") this.fail(f, "series_key_label is only allowed on repeated and map fields");
      if (isLabel && !ownGroup) continue; // labels of a singular nested message are ignored (see the rules)
      if (f.oneof) {
        if (isProduced(f)) this.fail(f, "fields inside a oneof of a payload are not supported");
        continue;
      }
      const metric = `${prefix}.${f.name}`;
      switch (f.fieldKind) {
        case "scalar":
          if (isLabel) continue;
          if (NUMERIC_SCALARS.has(f.scalar)) {
            numProps.push(f.localName);
            metrics.push(metric);
          }
          break;
        case "enum":
          break;
        case "message": {
          if (SKIPPED_MESSAGES.has(f.message.typeName)) break;
          if (depth >= MAX_DEPTH) this.fail(f, `nested deeper than ${MAX_DEPTH} (recursive message?)`);
          // The nested numbers follow this message's own numbers (see fill): collect them separately.
          const nested: string[] = [];
          const body = this.body(f.message, metric, labels, nested, false, depth + 1);
          if (nested.length > 0) {
            singles.push({ prop: f.localName, body, width: nested.length });
            nestedMetrics.push(nested);
          }
          if (body.children.length > 0) children.push({ kind: ChildKind.Single, prop: f.localName, body });
          break;
        }
        case "list":
          if (f.listKind === "scalar") {
            if (!NUMERIC_SCALARS.has(f.scalar)) break;
            const shape = this.shape([metric], labels, [[keyLabel || "index", SRC_KEY]], `${msg.typeName}.${f.name}`);
            children.push({ kind: ChildKind.List, prop: f.localName, shape });
          } else if (f.listKind === "message") {
            if (SKIPPED_MESSAGES.has(f.message.typeName)) break;
            const needsIndex = keyLabel !== "" || !hasOwnLabel(f.message);
            const plan = this.message(f.message, metric, labels, needsIndex ? keyLabel || "index" : undefined, depth + 1);
            if (planProduces(plan)) children.push({ kind: ChildKind.MessageList, prop: f.localName, plan });
          }
          break;
        case "map":
          if (f.mapKind === "scalar") {
            if (!NUMERIC_SCALARS.has(f.scalar)) break;
            const shape = this.shape([metric], labels, [[keyLabel || "key", SRC_KEY]], `${msg.typeName}.${f.name}`);
            children.push({ kind: ChildKind.Map, prop: f.localName, shape });
          } else if (f.mapKind === "message") {
            if (SKIPPED_MESSAGES.has(f.message.typeName)) break;
            const plan = this.message(f.message, metric, labels, keyLabel || "key", depth + 1);
            if (planProduces(plan)) children.push({ kind: ChildKind.MessageMap, prop: f.localName, plan });
          }
          break;
      }
    }
    // Metric order: own numbers first, then each singular nested message's numbers, in field order.
    for (const nested of nestedMetrics) metrics.push(...nested);
    return { numProps, singles, children };
  }
}

function sortedNames(inherited: readonly string[], extra: ReadonlyArray<readonly [string, number]>): readonly string[] {
  return [...inherited, ...extra.map(([n]) => n)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function hasOwnLabel(msg: DescMessage): boolean {
  return msg.fields.some((f) => getOption(f, series_label) && !getOption(f, series_skip));
}

/** Whether a field would produce anything (used to reject oneof members that matter). */
function isProduced(f: DescField): boolean {
  switch (f.fieldKind) {
    case "scalar":
      return NUMERIC_SCALARS.has(f.scalar) || getOption(f, series_label);
    case "message":
      return !SKIPPED_MESSAGES.has(f.message.typeName);
    default:
      return false;
  }
}

function planProduces(plan: MessagePlan): boolean {
  return plan.shape.metrics.length > 0 || plan.body.children.length > 0;
}

/** Gives shapes of one type whose label-name sets differ but have the same size distinct key prefixes. */
function assignKeyPrefixes(type: string, shapes: readonly GroupShape[]): void {
  const bySize = new Map<number, Set<string>>();
  for (const s of shapes) {
    const sig = s.labelNames.join("\u0000");
    let set = bySize.get(s.labelNames.length);
    if (!set) bySize.set(s.labelNames.length, (set = new Set()));
    set.add(sig);
  }
  for (const s of shapes) {
    const ambiguous = s.labelNames.length > 0 && bySize.get(s.labelNames.length)!.size > 1;
    s.keyPrefix = ambiguous ? `${type}{${s.labelNames.join(",")}}` : type;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Plan cache

const payloadFields: ReadonlyMap<string, DescField> = new Map(
  MetricEnvelopeSchema.oneofs.find((o) => o.name === "payload")!.fields.map((f) => [f.localName, f]),
);
const plans = new Map<string, TypePlan>();

function buildPlan(payloadCase: string): TypePlan | undefined {
  const field = payloadFields.get(payloadCase);
  if (!field || field.fieldKind !== "message") return undefined;
  const type = typeForCase(payloadCase as PayloadCase);
  const builder = new PlanBuilder(type);
  const root = builder.message(field.message, type, EMPTY_STRINGS, undefined, 0);
  assignKeyPrefixes(type, builder.shapes);
  const plan: TypePlan = { type, root, shapes: builder.shapes };
  plans.set(payloadCase, plan);
  return plan;
}

// ---------------------------------------------------------------------------------------------------------
// Hot path

type Obj = Record<string, unknown>;

const INDEX_STRINGS: readonly string[] = Array.from({ length: 256 }, (_, i) => String(i));

function num(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "string") return Number(v); // 64-bit fields with jstype = JS_STRING
  return NaN;
}

function labelString(v: unknown): string {
  if (typeof v === "string") return v;
  if (v === undefined) return "";
  return String(v);
}

function fill(body: Body, msg: Obj, values: number[]): void {
  const props = body.numProps;
  for (let i = 0; i < props.length; i++) values.push(num(msg[props[i]!]));
  const singles = body.singles;
  for (let i = 0; i < singles.length; i++) {
    const s = singles[i]!;
    const m = msg[s.prop] as Obj | undefined;
    if (m === undefined) for (let j = 0; j < s.width; j++) values.push(NaN);
    else fill(s.body, m, values);
  }
}

/** Label values of a group, in the shape's sorted order. */
function labelValues(shape: GroupShape, parent: readonly string[], msg: Obj | undefined, own: readonly LabelField[] | undefined, key: string): string[] {
  const src = shape.labelSrc;
  const vals = new Array<string>(src.length);
  for (let j = 0; j < src.length; j++) {
    const s = src[j]!;
    vals[j] = s >= 0 ? parent[s]! : s === SRC_KEY ? key : labelString(msg![own![SRC_OWN_BASE - s]!.prop]);
  }
  return vals;
}

function group(shape: GroupShape, vals: readonly string[], values: number[]): SeriesGroup {
  const n = vals.length;
  if (n === 0) return { key: shape.keyPrefix, labels: EMPTY_LABELS, metrics: shape.metrics, values };
  const names = shape.labelNames;
  let key = shape.keyPrefix;
  const labels = new Array<readonly [string, string]>(n);
  for (let j = 0; j < n; j++) {
    const v = vals[j]!;
    key += "\u0000" + v;
    labels[j] = [names[j]!, v];
  }
  return { key, labels, metrics: shape.metrics, values };
}

function emitMessage(plan: MessagePlan, msg: Obj, parent: readonly string[], key: string, out: SeriesGroup[]): void {
  const shape = plan.shape;
  const vals = shape.labelSrc.length === 0 ? EMPTY_STRINGS : labelValues(shape, parent, msg, plan.ownLabels, key);
  if (shape.metrics.length > 0) {
    const values: number[] = [];
    fill(plan.body, msg, values);
    out.push(group(shape, vals, values));
  }
  if (plan.body.children.length > 0) walk(plan.body, msg, vals, out);
}

function walk(body: Body, msg: Obj, vals: readonly string[], out: SeriesGroup[]): void {
  const children = body.children;
  for (let c = 0; c < children.length; c++) {
    const child = children[c]!;
    const v = msg[child.prop];
    if (v === undefined) continue;
    switch (child.kind) {
      case ChildKind.List: {
        const arr = v as readonly unknown[];
        for (let i = 0; i < arr.length; i++) {
          const idx = i < 256 ? INDEX_STRINGS[i]! : String(i);
          out.push(group(child.shape, labelValues(child.shape, vals, undefined, undefined, idx), [num(arr[i])]));
        }
        break;
      }
      case ChildKind.Map: {
        const obj = v as Obj;
        for (const k in obj) out.push(group(child.shape, labelValues(child.shape, vals, undefined, undefined, k), [num(obj[k])]));
        break;
      }
      case ChildKind.MessageList: {
        const arr = v as readonly Obj[];
        for (let i = 0; i < arr.length; i++) emitMessage(child.plan, arr[i]!, vals, i < 256 ? INDEX_STRINGS[i]! : String(i), out);
        break;
      }
      case ChildKind.MessageMap: {
        const obj = v as Record<string, Obj>;
        for (const k in obj) emitMessage(child.plan, obj[k]!, vals, k, out);
        break;
      }
      case ChildKind.Single:
        walk(child.body, v as Obj, vals, out);
        break;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// API

/** Appends the groups of one envelope to `out` (nothing for an envelope without payload). */
export function flattenEnvelope(env: MetricEnvelope, out: SeriesGroup[]): void {
  const payload = env.payload;
  const c = payload.case;
  if (c === undefined) return;
  const plan = plans.get(c) ?? buildPlan(c);
  if (plan === undefined) return;
  emitMessage(plan.root, payload.value as unknown as Obj, EMPTY_STRINGS, "", out);
}

const snapshotCases = new Map<string, boolean>();

/** Whether envelopes of this payload case are kept as snapshots: the payload message has `option (spectra.v1.snapshot) = true`. */
export function isSnapshotCase(payloadCase: string): boolean {
  let v = snapshotCases.get(payloadCase);
  if (v === undefined) {
    const f = payloadFields.get(payloadCase);
    v = f?.fieldKind === "message" && getOption(f.message, snapshot);
    snapshotCases.set(payloadCase, v);
  }
  return v;
}

/** Every metric name a payload type can produce, with its label names (for docs / list APIs), in proto order. */
export function describeSeries(): Array<{ type: string; metric: string; labels: string[] }> {
  const rows: Array<{ type: string; metric: string; labels: string[] }> = [];
  for (const c of payloadFields.keys()) {
    const plan = plans.get(c) ?? buildPlan(c);
    if (!plan) continue;
    for (const s of plan.shapes) for (const metric of s.metrics) rows.push({ type: plan.type, metric, labels: [...s.labelNames] });
  }
  return rows;
}
