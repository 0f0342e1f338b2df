import { create } from "@bufbuild/protobuf";
import fs from "node:fs";
import {
  ClockMetricsSchema,
  GpuMemorySchema,
  ThrottleStatusSchema,
  VoltageMetricsSchema,
} from "../../../gen/spectra/v1/metrics_pb.js";
import { parseDuration } from "../../config.js";
import type { Collector, CollectorContext, Payload } from "../types.js";
import { NO_DATA } from "../types.js";
import { Cadence } from "./cadence.js";
import {
  decodeThrottled,
  isRaspberryPiModel,
  parseClockHz,
  parseCpufreqKhz,
  parseMemBytes,
  parseThrottled,
  parseVolts,
} from "./parse.js";
import { monotonicMs } from "../../clock.js";

/** Default cadences of the slower parts (the collector itself runs every 10 s for the throttle state). */
export const DEFAULT_CLOCK_INTERVAL_MS = 15_000;
export const DEFAULT_VOLTAGE_INTERVAL_MS = 60_000;

/** vcgencmd asks the firmware through a mailbox; it answers in milliseconds unless the firmware is stuck. */
const VCGENCMD_TIMEOUT_MS = 2_000;
const VCGENCMD_MAX_OUTPUT_BYTES = 4 * 1024;
/** After vcgencmd turned out missing or unusable, try again this much later (a package or group may change). */
const VCGENCMD_RETRY_MS = 10 * 60_000;
/**
 * Where vcgencmd lives: on PATH (Raspberry Pi OS: /usr/bin), else the legacy firmware location; the agent's
 * runner passes a minimal PATH, so the absolute paths are tried too.
 */
const VCGENCMD_CANDIDATES = ["vcgencmd", "/usr/bin/vcgencmd", "/opt/vc/bin/vcgencmd"] as const;
/** The GPU's 3D block. Pi 0–5 all have `v3d`; the VideoCore "core" clock is reported separately as core. */
const GPU_CLOCK = "v3d";

/** Test seams for the Raspberry Pi collector. */
export interface RaspberryPiDeps {
  /** Monotonic clock in ms for the sub-cadences; default `monotonicMs` (agent/clock.ts). */
  now?: () => number;
}

/** Reads a small file, or undefined when it does not exist or cannot be read (fallback sources are optional). */
function readOptional(path: string): string | undefined {
  try {
    // sysfs/device-tree attributes of a few bytes: synchronous is cheaper than the thread-pool round trips.
    return fs.readFileSync(path, "latin1");
  } catch {
    return undefined;
  }
}

/** Duration option (ms number or "15s"), at least 1 s; throws a config-style error otherwise. */
function durationOption(options: Readonly<Record<string, unknown>>, key: string, def: number): number {
  const raw = options[key];
  if (raw === undefined || raw === null) return def;
  const ms = parseDuration(raw);
  if (ms === undefined || ms < 1_000) {
    throw new Error(`collectors.raspberrypi.options.${key}: ${JSON.stringify(raw)} is not a duration of at least 1s`);
  }
  return ms;
}

/**
 * Raspberry Pi firmware state, one collector on the fastest cadence (default 10 s):
 *
 * - every run: `throttle` from `vcgencmd get_throttled`, else the firmware's sysfs `get_throttled` file;
 * - every 15 s (option `clockInterval`): `clock` from `vcgencmd measure_clock arm|core|v3d`, the ARM clock
 *   falling back to cpufreq's `scaling_cur_freq`;
 * - every 60 s (option `voltageInterval`): `voltage` from `vcgencmd measure_volts core|sdram_c|sdram_i|sdram_p`
 *   and `gpu` from `vcgencmd get_mem gpu` (total) and `get_mem reloc_total`/`reloc` (used = total − free of the
 *   relocatable heap, where GPU allocations come from).
 *
 * The slower parts ride on the scheduler's ticks through {@link Cadence}: with 10 s ticks the clocks come at
 * 0, 20, 30, 50, 60 s… (every 15 s on average); a collector interval above a part's period makes that part run
 * every tick. On anything that is not a Pi (device-tree model from `<procRoot>/device-tree/model` or
 * `<sysRoot>/firmware/devicetree/base/model` without "Raspberry Pi") it returns NO_DATA forever and runs no
 * command. A value vcgencmd does not give is left out; a run that gets nothing at all while vcgencmd fails
 * (typically "VCHI initialization failed": the agent user is not in the `video` group) throws with that reason.
 */
export function createRaspberryPiCollector(ctx: CollectorContext, deps: RaspberryPiDeps = {}): Collector {
  const { procRoot, sysRoot } = ctx.host.paths;
  const now = deps.now ?? (() => monotonicMs());
  const clocks = new Cadence(durationOption(ctx.options, "clockInterval", DEFAULT_CLOCK_INTERVAL_MS));
  const slow = new Cadence(durationOption(ctx.options, "voltageInterval", DEFAULT_VOLTAGE_INTERVAL_MS));
  const throttledPath = `${sysRoot}/devices/platform/soc/soc:firmware/get_throttled`;
  const cpufreqPath = `${sysRoot}/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq`;

  let isPi: boolean | undefined;
  let vcgencmd: string | undefined;
  let vcUnusableUntil = -Infinity;
  /** Why vcgencmd gave nothing (missing, no permission), for the error of an empty run and one log line. */
  let vcProblem: string | undefined;
  let vcProblemLogged = false;

  const detect = (): boolean => {
    for (const p of [`${procRoot}/device-tree/model`, `${sysRoot}/firmware/devicetree/base/model`]) {
      const model = readOptional(p);
      if (model !== undefined) return isRaspberryPiModel(model);
    }
    return false;
  };

  const vcUnusable = (problem: string): undefined => {
    vcUnusableUntil = now() + VCGENCMD_RETRY_MS;
    vcProblem = problem;
    return undefined;
  };

  /** One vcgencmd call; the trimmed answer on success, undefined (and the reason noted) otherwise. */
  const vc = async (args: readonly string[], signal: AbortSignal): Promise<string | undefined> => {
    if (now() < vcUnusableUntil) return undefined;
    const candidates = vcgencmd !== undefined ? [vcgencmd] : VCGENCMD_CANDIDATES;
    for (const file of candidates) {
      let res;
      try {
        res = await ctx.host.exec.run(file, args, {
          timeoutMs: VCGENCMD_TIMEOUT_MS,
          maxOutputBytes: VCGENCMD_MAX_OUTPUT_BYTES,
          signal,
        });
      } catch (err) {
        if (signal.aborted) throw err;
        const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
        if (code === "ENOENT" && vcgencmd === undefined) continue;
        // EACCES, or the known path vanished: look it up again after the back-off.
        vcgencmd = undefined;
        return vcUnusable(`vcgencmd could not start (${code ?? (err as Error).message})`);
      }
      vcgencmd = file;
      const out = res.stdout.trim();
      if (res.exitCode === 0 && !res.timedOut) {
        vcProblem = undefined;
        vcProblemLogged = false;
        return out;
      }
      const text = `${out} ${res.stderr.trim()}`.trim();
      if (/VCHI initialization failed|vchiq/i.test(text)) {
        return vcUnusable(`vcgencmd: ${text.split("\n")[0]} (the agent user needs /dev/vchiq: add it to the "video" group)`);
      }
      // One command failing (an unknown clock on this model) is not vcgencmd failing.
      ctx.logger.debug(
        { args, exitCode: res.exitCode, timedOut: res.timedOut, out: text.slice(0, 200) },
        "vcgencmd answer ignored",
      );
      return undefined;
    }
    return vcUnusable("vcgencmd not found (install the raspi-utils / libraspberrypi-bin package)");
  };

  const throttlePayload = async (signal: AbortSignal): Promise<Payload | undefined> => {
    const fromVc = await vc(["get_throttled"], signal);
    let mask = fromVc !== undefined ? parseThrottled(fromVc) : undefined;
    if (mask === undefined) {
      const text = readOptional(throttledPath);
      mask = text !== undefined ? parseThrottled(text) : undefined;
    }
    if (mask === undefined) return undefined;
    return { case: "throttle", value: create(ThrottleStatusSchema, decodeThrottled(mask)) };
  };

  const clockPayload = async (signal: AbortSignal): Promise<Payload | undefined> => {
    const hz = async (clock: string): Promise<number | undefined> => {
      const out = await vc(["measure_clock", clock], signal);
      return out !== undefined ? parseClockHz(out) : undefined;
    };
    let arm = await hz("arm");
    if (arm === undefined) {
      const text = readOptional(cpufreqPath);
      arm = text !== undefined ? parseCpufreqKhz(text) : undefined;
    }
    const core = await hz("core");
    const gpu = await hz(GPU_CLOCK);
    if (arm === undefined && core === undefined && gpu === undefined) return undefined;
    return {
      case: "clock",
      value: create(ClockMetricsSchema, {
        ...(arm !== undefined ? { armFreqHz: BigInt(arm) } : {}),
        ...(core !== undefined ? { coreFreqHz: BigInt(core) } : {}),
        ...(gpu !== undefined ? { gpuFreqHz: BigInt(gpu) } : {}),
      }),
    };
  };

  const voltagePayload = async (signal: AbortSignal): Promise<Payload | undefined> => {
    const volts = async (rail: string): Promise<number | undefined> => {
      const out = await vc(["measure_volts", rail], signal);
      return out !== undefined ? parseVolts(out) : undefined;
    };
    const core = await volts("core");
    const sdramC = await volts("sdram_c");
    const sdramI = await volts("sdram_i");
    const sdramP = await volts("sdram_p");
    if ([core, sdramC, sdramI, sdramP].every((v) => v === undefined)) return undefined;
    return {
      case: "voltage",
      value: create(VoltageMetricsSchema, {
        ...(core !== undefined ? { coreVolts: core } : {}),
        ...(sdramC !== undefined ? { sdramCVolts: sdramC } : {}),
        ...(sdramI !== undefined ? { sdramIVolts: sdramI } : {}),
        ...(sdramP !== undefined ? { sdramPVolts: sdramP } : {}),
      }),
    };
  };

  const gpuPayload = async (signal: AbortSignal): Promise<Payload | undefined> => {
    const mem = async (kind: string): Promise<number | undefined> => {
      const out = await vc(["get_mem", kind], signal);
      return out !== undefined ? parseMemBytes(out) : undefined;
    };
    const total = await mem("gpu");
    if (total === undefined) return undefined;
    const relocTotal = await mem("reloc_total");
    const relocFree = relocTotal !== undefined ? await mem("reloc") : undefined;
    const used =
      relocTotal !== undefined && relocFree !== undefined && relocFree <= relocTotal ? relocTotal - relocFree : undefined;
    return {
      case: "gpu",
      value: create(GpuMemorySchema, {
        gpuMemTotal: BigInt(total),
        ...(used !== undefined ? { gpuMemUsed: BigInt(used) } : {}),
      }),
    };
  };

  return {
    async collect(signal) {
      // The model never changes: decide once, and a non-Pi never runs a command.
      isPi ??= detect();
      if (!isPi) return NO_DATA;

      const t = now();
      const payloads: Payload[] = [];
      // One command at a time: each is a fork, and the firmware mailbox serialises them anyway.
      const throttle = await throttlePayload(signal);
      if (throttle) payloads.push(throttle);
      if (clocks.take(t)) {
        const p = await clockPayload(signal);
        if (p) payloads.push(p);
      }
      if (slow.take(t)) {
        for (const p of [await voltagePayload(signal), await gpuPayload(signal)]) if (p) payloads.push(p);
      }

      if (payloads.length === 0 && vcProblem !== undefined) {
        throw new Error(`no Raspberry Pi data: ${vcProblem}`);
      }
      if (vcProblem !== undefined && !vcProblemLogged) {
        vcProblemLogged = true;
        ctx.logger.warn({ problem: vcProblem }, "vcgencmd unusable; reporting the sysfs fallbacks only");
      }
      return payloads;
    },
  };
}
