// Random messages of every contract type, built from the descriptors: for round-trip tests of the codecs.
import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { file_spectra_v1_admin_service } from "../../../gen/spectra/v1/admin_service_pb.js";
import { file_spectra_v1_agent_service } from "../../../gen/spectra/v1/agent_service_pb.js";
import { file_spectra_v1_diagnostics } from "../../../gen/spectra/v1/diagnostics_pb.js";
import { file_spectra_v1_history_service } from "../../../gen/spectra/v1/history_service_pb.js";
import { file_spectra_v1_metrics } from "../../../gen/spectra/v1/metrics_pb.js";
export { prng } from "../../prng.js";
import { prng } from "../../prng.js";


const STRINGS = ["", "a", "/dev/sda1", "héllo wörld ✓", "日本語", "x".repeat(130), "y".repeat(20_000), "emoji 🚀"];

function scalar(t: ScalarType, r: () => number): unknown {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  switch (t) {
    case ScalarType.STRING:
      return pick(STRINGS);
    case ScalarType.BYTES:
      return Uint8Array.from({ length: pick([0, 1, 200]) }, (_, i) => i % 256);
    case ScalarType.BOOL:
      return r() < 0.5;
    case ScalarType.DOUBLE:
      return pick([0, -0, 1.5, -3.25, 12.34, 1e300, 5e-324, Number.MAX_SAFE_INTEGER, r() * 1e6]);
    case ScalarType.FLOAT:
      return pick([0, 1.5, -2.25, 1024]);
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return pick([0n, 1n, -1n, 300n, -(2n ** 63n), 2n ** 63n - 1n, 2n ** 53n + 1n]);
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return pick([0n, 1n, 127n, 128n, 2n ** 64n - 1n, 2n ** 53n, 25276514304n]);
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return pick([0, 1, -1, 127, 128, -2147483648, 2147483647, 300]);
    default:
      return pick([0, 1, 127, 128, 16384, 4294967295]);
  }
}

/** A random init object for `desc`: fields set or not, lists and maps of 0–3 elements, a oneof case or none. */
export function randomInit(desc: DescMessage, r: () => number, depth = 0): Record<string, unknown> {
  const init: Record<string, unknown> = {};
  const value = (f: DescField): unknown => {
    switch (f.fieldKind) {
      case "scalar":
        return scalar(f.scalar, r);
      case "enum":
        return f.enum.values[Math.floor(r() * f.enum.values.length)]!.number;
      case "message":
        return randomInit(f.message, r, depth + 1);
      default:
        return undefined;
    }
  };
  for (const oneof of desc.oneofs) {
    if (r() < 0.2 || depth > 3) continue;
    const f = oneof.fields[Math.floor(r() * oneof.fields.length)]!;
    init[oneof.localName] = { case: f.localName, value: value(f) };
  }
  for (const f of desc.fields) {
    if (f.oneof || r() < 0.25) continue;
    if (depth > 3 && (f.fieldKind === "message" || f.fieldKind === "list" || f.fieldKind === "map")) continue;
    const n = Math.floor(r() * 4);
    switch (f.fieldKind) {
      case "list":
        init[f.localName] = Array.from({ length: n }, () =>
          f.listKind === "scalar" ? scalar(f.scalar, r) : f.listKind === "enum" ? 1 : randomInit(f.message, r, depth + 1),
        );
        break;
      case "map": {
        const m: Record<string, unknown> = {};
        for (let i = 0; i < n; i++) {
          const k = String(f.mapKey === ScalarType.STRING ? `k${i}` : f.mapKey === ScalarType.BOOL ? i % 2 === 0 : i);
          m[k] = f.mapKind === "scalar" ? scalar(f.scalar, r) : f.mapKind === "enum" ? 1 : randomInit(f.message, r, depth + 1);
        }
        init[f.localName] = m;
        break;
      }
      default:
        init[f.localName] = value(f);
    }
  }
  return init;
}

export const contractFiles = [
  file_spectra_v1_metrics,
  file_spectra_v1_diagnostics,
  file_spectra_v1_agent_service,
  file_spectra_v1_admin_service,
  file_spectra_v1_history_service,
];

