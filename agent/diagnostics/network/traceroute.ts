import { create } from "@bufbuild/protobuf";
import { TraceProbeSchema, TracerouteHopSchema, type NetworkDiagResult, type TracerouteHop } from "../../../gen/spectra/v1/diagnostics_pb.js";
import type { DiagnosticContext } from "../registry.js";
import { quote } from "../validate.js";
import type { NetworkRequest } from "./params.js";
import { busyboxPrograms, capText, linuxPrograms, runFirst, windowsProgram, type Program, type ProgramRun } from "./programs.js";
import { networkResult } from "./result.js";
import { isUnknownHost, parseTracepath, parseTraceroute, parseTracert, type ParsedHop } from "./traceroute-parse.js";

/** A validated traceroute request. */
export type TracerouteRequest = Extract<NetworkRequest, { action: "traceroute" }>;

/** The whole run (docs/data-sources.md 4.7); what was printed by then is still parsed and returned. */
export const TRACE_TIMEOUT_MS = 60_000;
/** raw_output is kept up to this many characters (30 hops of traceroute are about 2 KiB). */
export const RAW_OUTPUT_MAX = 64 * 1024;
const MAX_OUTPUT_BYTES = 256 * 1024;

/** Which parser reads a tool's output. */
export type TraceFormat = "traceroute" | "tracepath" | "tracert";

/** One way to trace: the programs to try and how to build the arguments. */
export interface TraceTool {
  format: TraceFormat;
  programs: readonly Program[];
  args(req: TracerouteRequest): string[];
}

/** `traceroute -n -q N -w S -m H [-6] -- host` (traceroute 2.x and busybox take the same options). */
export function tracerouteArgs(req: TracerouteRequest): string[] {
  const wait = String(Math.ceil(req.waitMs / 1000));
  return ["-n", "-q", String(req.probes), "-w", wait, "-m", String(req.maxHops), ...(req.family === 6 ? ["-6"] : []), "--", req.host];
}

/** `tracepath -n -m H [-6] -- host` (no probe count or wait options). */
export function tracepathArgs(req: TracerouteRequest): string[] {
  return ["-n", "-m", String(req.maxHops), ...(req.family === 6 ? ["-6"] : []), "--", req.host];
}

/** `tracert -d -h H -w ms [-4|-6] host` (no `--`: validation keeps a leading '-' out). */
export function tracertArgs(req: TracerouteRequest): string[] {
  const family = req.family === 6 ? ["-6"] : req.family === 4 ? ["-4"] : [];
  return ["-d", "-h", String(req.maxHops), "-w", String(req.waitMs), ...family, req.host];
}

/** The tools in the order they are tried: traceroute, tracepath, busybox traceroute (Linux); tracert (Windows). */
export function defaultTraceTools(platform: "linux" | "windows"): TraceTool[] {
  if (platform === "windows") return [{ format: "tracert", programs: [windowsProgram("TRACERT.EXE", "tracert")], args: tracertArgs }];
  return [
    { format: "traceroute", programs: linuxPrograms("traceroute"), args: tracerouteArgs },
    { format: "tracepath", programs: linuxPrograms("tracepath"), args: tracepathArgs },
    { format: "traceroute", programs: busyboxPrograms("traceroute"), args: tracerouteArgs },
  ];
}

/** Test seams. */
export interface TracerouteDeps {
  tools?: readonly TraceTool[];
}

const PARSERS: Readonly<Record<TraceFormat, (text: string) => ParsedHop[]>> = {
  traceroute: parseTraceroute,
  tracepath: parseTracepath,
  tracert: parseTracert,
};

function toHops(parsed: readonly ParsedHop[]): TracerouteHop[] {
  return parsed.map((h) =>
    create(TracerouteHopSchema, {
      ttl: h.ttl,
      probes: h.probes.map((p) =>
        create(TraceProbeSchema, { address: p.address, hostname: p.hostname, ...(p.rttNs !== undefined ? { rtt: p.rttNs } : {}) }),
      ),
    }),
  );
}

/**
 * Traces the route to the host: hops with the address and RTT (ns) of each probe, lost probes without an RTT, the
 * program's text in raw_output (capped, as the original kept it) and the program in `tool`. Each tool is looked up
 * in fixed directories; a missing one moves on to the next. The run is bounded by TRACE_TIMEOUT_MS: whatever was
 * printed by then is returned, with a note at the end of raw_output. Throws for an unknown host, when no tool is
 * installed, or when the tool failed without printing a hop.
 */
export async function runTraceroute(
  req: TracerouteRequest,
  ctx: Pick<DiagnosticContext, "host" | "signal" | "markTruncated">,
  deps: TracerouteDeps = {},
): Promise<NetworkDiagResult> {
  const tools = deps.tools ?? defaultTraceTools(ctx.host.platform);
  let found: { tool: TraceTool; run: ProgramRun } | undefined;
  for (const tool of tools) {
    const run = await runFirst(ctx.host, tool.programs, tool.args(req), {
      timeoutMs: TRACE_TIMEOUT_MS,
      maxOutputBytes: MAX_OUTPUT_BYTES,
      signal: ctx.signal,
    });
    if (run) {
      found = { tool, run };
      break;
    }
  }
  if (!found) {
    throw new Error(
      ctx.host.platform === "windows"
        ? "traceroute: tracert.exe not found"
        : "traceroute: none of traceroute, tracepath or busybox is installed (install traceroute or iputils-tracepath)",
    );
  }
  const { tool, run } = found;
  const { result: out, program } = run;
  const hops = PARSERS[tool.format](out.stdout);
  const errText = `${out.stderr}\n${hops.length === 0 ? out.stdout : ""}`.trim();
  if (hops.length === 0) {
    if (isUnknownHost(errText)) throw new Error(`${program.tool}: unknown host ${quote(req.host)} (${firstLine(errText)})`);
    if (out.exitCode !== 0 || out.timedOut) {
      const why = out.timedOut ? `no hop within ${TRACE_TIMEOUT_MS / 1000} s` : firstLine(errText) || `exit code ${out.exitCode ?? out.signal}`;
      throw new Error(`${program.tool} ${req.host}: ${why}`);
    }
  }
  const result = networkResult("traceroute", req.target, program.tool);
  result.hops = toHops(hops);
  const notes = [
    ...(out.timedOut ? [`[spectra: stopped after ${TRACE_TIMEOUT_MS / 1000} s]`] : []),
    ...(out.truncated ? [`[spectra: output cut at ${MAX_OUTPUT_BYTES} bytes]`] : []),
  ];
  const raw = [out.stdout.replace(/\s+$/, ""), out.stderr.trim(), ...notes].filter((s) => s !== "").join("\n");
  result.rawOutput = capText(raw, RAW_OUTPUT_MAX);
  if (notes.length > 0 || raw.length > RAW_OUTPUT_MAX) ctx.markTruncated?.();
  return result;
}

function firstLine(text: string): string {
  return (
    text
      .split("\n")
      .map((l) => l.trim())
      .find((l) => l !== "" && !/^(exit=|argv:)/.test(l)) ?? ""
  );
}
