import type { NetworkDiagResult } from "../../../gen/spectra/v1/diagnostics_pb.js";
import type { DiagnosticContext } from "../registry.js";
import { quote } from "../validate.js";
import type { NetworkRequest } from "./params.js";
import { classifyPingError, parseUnixPing, parseWindowsPing } from "./ping-parse.js";
import { busyboxPrograms, linuxPrograms, runFirst, windowsProgram, type Program } from "./programs.js";
import { networkResult, withPing } from "./result.js";

/** A validated ping request. */
export type PingRequest = Extract<NetworkRequest, { action: "ping" }>;

/** Slack on top of count × per-reply timeout for the process as a whole (start-up, DNS, the last reply). */
const MARGIN_MS = 5_000;
/** 100 echo lines are under 10 KiB; anything far beyond is not ping talking. */
const MAX_OUTPUT_BYTES = 256 * 1024;
/** Seconds between echoes on Linux: fast, and the lowest interval older iputils allows without root. */
const INTERVAL = "0.2";

/** Test seams. */
export interface PingDeps {
  /** Candidates in order; default iputils in the fixed directories, then busybox (Linux), or System32\PING.EXE. */
  programs?: readonly Program[];
}

/** The privilege error, with what to change. */
export function privilegeMessage(detail: string): string {
  return (
    `ping: the agent lacks the privilege to send ICMP echo requests (${detail}); ` +
    "give it CAP_NET_RAW (systemd: AmbientCapabilities=CAP_NET_RAW) or include its group in net.ipv4.ping_group_range"
  );
}

/** The ping argument list (after any busybox applet name). The target is validated and follows `--` on Linux. */
export function pingArgs(req: PingRequest, platform: "linux" | "windows"): string[] {
  if (platform === "windows") {
    // ping.exe has no `--`: validation (no leading '-') is what keeps the target from reading as an option.
    const family = req.family === 6 ? ["-6"] : req.family === 4 ? ["-4"] : [];
    return ["-n", String(req.count), "-w", String(req.timeoutMs), ...family, req.host];
  }
  const waitSeconds = String(Math.ceil(req.timeoutMs / 1000));
  return ["-n", "-c", String(req.count), "-W", waitSeconds, "-i", INTERVAL, ...(req.family === 6 ? ["-6"] : []), "--", req.host];
}

/** The process timeout: count × per-reply timeout + a margin (Windows waits at least a second between echoes). */
export function pingTimeoutMs(req: PingRequest, platform: "linux" | "windows"): number {
  const perEcho = platform === "windows" ? Math.max(req.timeoutMs, 1_000) : req.timeoutMs;
  return req.count * perEcho + MARGIN_MS;
}

/**
 * Pings through the system's ping (Node has no ICMP sockets): iputils, else busybox, on Linux; System32\PING.EXE on
 * Windows. Answers one ping_results entry per echo ("reply" with rtt in ns, "timeout", "dest unreachable",
 * "ttl exceeded") and the summary. Throws a clear error when ping is missing, the agent lacks the ICMP privilege,
 * the host is unknown, or ping produced no echo and no summary (with its message, e.g. network unreachable).
 */
export async function runPing(req: PingRequest, ctx: Pick<DiagnosticContext, "host" | "signal">, deps: PingDeps = {}): Promise<NetworkDiagResult> {
  const platform = ctx.host.platform;
  const programs = deps.programs ?? (platform === "windows" ? [windowsProgram("PING.EXE", "ping")] : [...linuxPrograms("ping"), ...busyboxPrograms("ping")]);
  const timeoutMs = pingTimeoutMs(req, platform);
  const run = await runFirst(ctx.host, programs, pingArgs(req, platform), { timeoutMs, maxOutputBytes: MAX_OUTPUT_BYTES, signal: ctx.signal });
  if (!run) throw new Error("ping: no ping program found (install iputils-ping or busybox)");
  const { result, program } = run;

  const parsed = platform === "windows" ? parseWindowsPing(result.stdout) : parseUnixPing(result.stdout);
  if (parsed.echoes.length === 0 && !parsed.summary) {
    // Nothing to report: say why, from what ping printed (Windows prints its errors on stdout).
    const failure = classifyPingError(platform === "windows" ? `${result.stderr}\n${result.stdout}` : result.stderr);
    if (failure.kind === "privilege") throw new Error(privilegeMessage(failure.detail));
    if (failure.kind === "unknown-host") throw new Error(`ping: unknown host ${quote(req.host)} (${failure.detail})`);
    if (result.timedOut) throw new Error(`ping ${req.host}: no output within ${Math.round(timeoutMs / 1000)} s`);
    const detail = failure.detail || `exit code ${result.exitCode ?? result.signal ?? "unknown"}`;
    throw new Error(`ping ${req.host}: ${detail}`);
  }
  return withPing(networkResult("ping", req.target, program.tool), parsed);
}
