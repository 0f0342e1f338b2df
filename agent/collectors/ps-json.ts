/**
 * Helpers for the JSON that Windows PowerShell 5.1 writes with `ConvertTo-Json -Compress`, shared by the pure
 * Windows parsers. The quirks they absorb (docs/data-sources.md, section 2.3):
 *
 * - a single result is an object, not an array (and no result is empty output);
 * - dates may arrive as `"\/Date(1700000000000)\/"` instead of ISO 8601;
 * - the text may start with a UTF-8 BOM;
 * - a failing script answers `{"error":"…"}` (the session's try/catch).
 */

/** A property bag from PowerShell: values are unknown until checked. */
export type PsObject = Readonly<Record<string, unknown>>;

/**
 * Parses PowerShell JSON output into a list of objects: strips a BOM, treats empty output as an empty list, wraps
 * a single object, and throws `Error("<what>: <message>")` for the `{"error": …}` answer or invalid JSON.
 */
export function parsePsList(text: string, what: string): PsObject[] {
  const value = parsePsValue(text, what);
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.filter((v): v is PsObject => typeof v === "object" && v !== null && !Array.isArray(v));
}

/** Parses PowerShell JSON output expected to be one object (a single-element array is unwrapped). */
export function parsePsObject(text: string, what: string): PsObject {
  const list = parsePsList(text, what);
  const first = list[0];
  if (first === undefined) throw new Error(`${what}: empty answer`);
  return first;
}

function parsePsValue(text: string, what: string): unknown {
  const clean = text.replace(/^\uFEFF/, "").trim();
  if (clean === "") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(clean);
  } catch (cause) {
    throw new Error(`${what}: invalid JSON from PowerShell`, { cause });
  }
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const err = (value as PsObject)["error"];
    if (typeof err === "string" && Object.keys(value).length === 1) throw new Error(`${what}: ${err}`);
  }
  return value;
}

/** A finite number from a JSON number or numeric string (UInt64 values may be sent as strings), else undefined. */
export function psNumber(v: unknown): number | undefined {
  if (typeof v === "number") return Number.isFinite(v) ? v : undefined;
  if (typeof v === "string" && v.trim() !== "") {
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

/** A string property, or "" when absent or not a string. */
export function psString(v: unknown): string {
  return typeof v === "string" ? v : "";
}

/**
 * Milliseconds since the epoch from an ISO 8601 string or a `/Date(ms)/` string (with an optional `+hhmm`
 * offset, which does not change the instant), else undefined.
 */
export function psDateMs(v: unknown): number | undefined {
  if (typeof v !== "string") return undefined;
  const m = /^\/Date\((-?\d+)(?:[+-]\d{4})?\)\/$/.exec(v);
  if (m) return Number(m[1]);
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
}
