import type { ContainerRow } from "./payload.js";

/** What one source (Docker, Proxmox) gives for a run: its rows, or that it does not exist on this host. */
export type SourceOutcome = { present: true; rows: ContainerRow[] } | { present: false; reason: string };

/**
 * One source of containers or guests. `collect` throws when the source exists but fails (a hung socket, a
 * failing `pvesh`); it resolves `{present: false}` when the source is simply not on this host.
 */
export interface ContainerSource {
  readonly name: "docker" | "proxmox";
  collect(signal: AbortSignal): Promise<SourceOutcome>;
}

/** The first `code` (ENOENT, EACCES, …) and HTTP `statusCode` found along an error's `cause` chain. */
export function errorDetails(err: unknown): { code: string | undefined; statusCode: number | undefined } {
  let code: string | undefined;
  let statusCode: number | undefined;
  for (
    let e: unknown = err, depth = 0;
    e && typeof e === "object" && depth < 8;
    e = (e as { cause?: unknown }).cause, depth++
  ) {
    const c = (e as { code?: unknown }).code;
    const s = (e as { statusCode?: unknown }).statusCode;
    if (code === undefined && typeof c === "string") code = c;
    if (statusCode === undefined && typeof s === "number") statusCode = s;
  }
  return { code, statusCode };
}

/** An error's message with its causes' messages ("list containers: no answer within 5000 ms: aborted"). */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  for (
    let e: unknown = err, depth = 0;
    e !== undefined && e !== null && depth < 8;
    e = (e as { cause?: unknown }).cause, depth++
  ) {
    const msg = e instanceof Error ? e.message : String(e);
    if (msg && !parts.some((p) => p.includes(msg))) parts.push(msg.trim());
    if (typeof e !== "object") break;
  }
  return parts.join(": ");
}
