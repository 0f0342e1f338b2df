/**
 * Pure parsers for the Raspberry Pi sources: `vcgencmd` answers (samples: testdata/vcgencmd/, hand-written, see
 * testdata/README.md), the device-tree model and the sysfs fallbacks. Every parser returns undefined for text it
 * does not recognise (an error message, an unsupported clock), never throws: a missing value is not a failure.
 */

/** The eight flags of `get_throttled`, as in the `throttle` payload. */
export interface ThrottleFlags {
  undervoltage: boolean;
  armFreqCapped: boolean;
  throttled: boolean;
  softTempLimit: boolean;
  undervoltageOccurred: boolean;
  freqCapOccurred: boolean;
  throttledOccurred: boolean;
  softTempOccurred: boolean;
}

/**
 * Bit of each flag in the `get_throttled` mask (Raspberry Pi documentation): bits 0–3 are the state now,
 * bits 16–19 whether it happened since boot.
 */
export const THROTTLE_BITS: Readonly<Record<keyof ThrottleFlags, number>> = {
  undervoltage: 0,
  armFreqCapped: 1,
  throttled: 2,
  softTempLimit: 3,
  undervoltageOccurred: 16,
  freqCapOccurred: 17,
  throttledOccurred: 18,
  softTempOccurred: 19,
};

/** True when a device-tree `model` (NUL-terminated) names a Raspberry Pi ("Raspberry Pi 4 Model B Rev 1.4"). */
export function isRaspberryPiModel(model: string): boolean {
  return /Raspberry Pi/.test(model.replace(/\0/g, ""));
}

/**
 * The mask from `vcgencmd get_throttled` (`throttled=0x50005`) or from the firmware's sysfs file, which holds the
 * bare hex number (`50005`). Undefined for anything else.
 */
export function parseThrottled(text: string): number | undefined {
  const t = text.trim();
  const m = /^throttled=0x([0-9a-fA-F]{1,8})$/.exec(t) ?? /^(?:0x)?([0-9a-fA-F]{1,8})$/.exec(t);
  return m ? parseInt(m[1]!, 16) : undefined;
}

/** Decodes a `get_throttled` mask into the eight flags (see {@link THROTTLE_BITS}). */
export function decodeThrottled(mask: number): ThrottleFlags {
  const bit = (n: number): boolean => Math.floor(mask / 2 ** n) % 2 === 1;
  return {
    undervoltage: bit(THROTTLE_BITS.undervoltage),
    armFreqCapped: bit(THROTTLE_BITS.armFreqCapped),
    throttled: bit(THROTTLE_BITS.throttled),
    softTempLimit: bit(THROTTLE_BITS.softTempLimit),
    undervoltageOccurred: bit(THROTTLE_BITS.undervoltageOccurred),
    freqCapOccurred: bit(THROTTLE_BITS.freqCapOccurred),
    throttledOccurred: bit(THROTTLE_BITS.throttledOccurred),
    softTempOccurred: bit(THROTTLE_BITS.softTempOccurred),
  };
}

/**
 * Hz from `vcgencmd measure_clock <clock>`: `frequency(48)=1500398464`. The number in parentheses is the
 * firmware's clock index and differs by model (45 on a 3B+, 48 on a 4), so it is ignored. `frequency(0)=0` is a
 * clock that is switched off: 0 Hz, a real value.
 */
export function parseClockHz(text: string): number | undefined {
  const m = /^frequency\(\d+\)=(\d+)$/.exec(text.trim());
  return m ? Number(m[1]) : undefined;
}

/** Volts from `vcgencmd measure_volts <rail>`: `volt=0.8500V`. */
export function parseVolts(text: string): number | undefined {
  const m = /^volt=(\d+(?:\.\d+)?)V$/.exec(text.trim());
  return m ? Number(m[1]) : undefined;
}

/** Bytes from `vcgencmd get_mem <kind>`: `gpu=76M` (also K and G suffixes, or plain bytes). */
export function parseMemBytes(text: string): number | undefined {
  const m = /^[a-z_]+=(\d+)([KMG]?)$/.exec(text.trim());
  if (!m) return undefined;
  const scale = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2] as "" | "K" | "M" | "G"];
  return Number(m[1]) * scale;
}

/** Hz from cpufreq's `scaling_cur_freq`, which is in kHz (`1500000` → 1.5 GHz). */
export function parseCpufreqKhz(text: string): number | undefined {
  const t = text.trim();
  return /^\d+$/.test(t) ? Number(t) * 1000 : undefined;
}
