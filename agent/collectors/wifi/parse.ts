import type { WifiReading } from "./payload.js";

/**
 * Pure parsers for the Linux Wi-Fi sources: `/proc/net/wireless` and `iw dev <if> link`.
 * Samples: testdata/linux/ (hand-written, see testdata/README.md) and testdata/captured/ (a host without Wi-Fi).
 */

/** One interface line of `/proc/net/wireless`. */
export interface ProcWirelessEntry {
  interface: string;
  /** Link quality as the driver reports it (cfg80211 drivers: 0–70). Undefined when unparsable. */
  link?: number;
  /** Signal level in dBm; undefined when the driver reports none (0) or a non-dBm value. */
  levelDbm?: number;
}

/** What `iw dev <if> link` says about one interface. */
export interface IwLink {
  connected: boolean;
  bssid?: string;
  ssid?: string;
  freqMhz?: number;
  signalDbm?: number;
  rxBitrateMbps?: number;
  txBitrateMbps?: number;
}

/** The maximum link quality cfg80211 reports through wireless extensions (`sig = dBm + 110`, clamped to 0–70). */
export const CFG80211_MAX_QUALITY = 70;

/**
 * Parses `/proc/net/wireless` (sample: testdata/linux/proc-net-wireless-one): two header lines, then
 * `  wlan0: 0000   54.  -56.  -256  …` per interface. The trailing `.` marks an updated value. A level of 0 means
 * "no level"; some old drivers print the level as an unsigned byte (e.g. 200 for -56 dBm), which is mapped back.
 * Empty or headers-only text gives an empty list.
 */
export function parseProcNetWireless(text: string): ProcWirelessEntry[] {
  const out: ProcWirelessEntry[] = [];
  for (const line of text.split("\n")) {
    // Header lines contain "|"; interface lines are "<name>: <status> <link> <level> <noise> …".
    const m = /^\s*([^\s:|]+):\s+(\S+)\s+(-?[\d.]+)\s+(-?[\d.]+)/.exec(line);
    if (!m) continue;
    const entry: ProcWirelessEntry = { interface: m[1]! };
    const link = parseFloat(m[3]!);
    if (Number.isFinite(link) && link >= 0) entry.link = link;
    let level = parseFloat(m[4]!);
    if (Number.isFinite(level) && level !== 0) {
      // Without the IW_QUAL_DBM flag the kernel prints the raw u8; values above 63 are dBm + 256.
      if (level > 63 && level < 256) level -= 256;
      if (level < 0) entry.levelDbm = level;
    }
    out.push(entry);
  }
  return out;
}

/**
 * Decodes the `\xNN` escapes `iw` prints for SSID bytes that are not printable ASCII (and for a backslash or a
 * leading/trailing space), then reads the bytes as UTF-8. `HomeNet \xe2\x9c\x93` → `HomeNet ✓`.
 */
export function decodeIwEscapes(s: string): string {
  if (!s.includes("\\x")) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; ) {
    const m = /^\\x([0-9a-fA-F]{2})/.exec(s.slice(i, i + 4));
    if (m) {
      bytes.push(parseInt(m[1]!, 16));
      i += 4;
      continue;
    }
    for (const b of Buffer.from(s[i]!, "utf8")) bytes.push(b);
    i++;
  }
  return new TextDecoder("utf-8").decode(Uint8Array.from(bytes));
}

/**
 * Parses `iw dev <if> link` (samples: testdata/linux/iw-link-*.txt). `Connected to <bssid>` starts a connected
 * link; `Not connected.` means none. Per-line regexes, because iw warns that its output is not stable
 * ("Do NOT screenscrape this tool"): unknown lines are ignored and every field is optional. `freq` may be an
 * integer or a decimal (`5180.0`); bitrates are MBit/s followed by MCS details.
 */
export function parseIwLink(text: string): IwLink {
  const connectedTo = /^Connected to ([0-9a-fA-F:]{17})/m.exec(text);
  if (!connectedTo) return { connected: false };
  const link: IwLink = { connected: true, bssid: connectedTo[1]!.toLowerCase() };
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\r$/, "");
    let m: RegExpExecArray | null;
    if ((m = /^\s+SSID: (.*)$/.exec(line))) link.ssid = decodeIwEscapes(m[1]!);
    else if ((m = /^\s+freq: ([\d.]+)/.exec(line))) link.freqMhz = finite(m[1]!);
    else if ((m = /^\s+signal: (-?[\d.]+) dBm/.exec(line))) link.signalDbm = finite(m[1]!);
    else if ((m = /^\s+rx bitrate: ([\d.]+) MBit\/s/.exec(line))) link.rxBitrateMbps = finite(m[1]!);
    else if ((m = /^\s+tx bitrate: ([\d.]+) MBit\/s/.exec(line))) link.txBitrateMbps = finite(m[1]!);
  }
  return link;
}

/**
 * Link quality in percent from a cfg80211 link value (0–70, see {@link CFG80211_MAX_QUALITY}), clamped to 0–100,
 * so Linux and Windows (whose "Signal" is already a percentage) report the same scale.
 */
export function linkQualityPercent(link: number): number {
  return clamp((link / CFG80211_MAX_QUALITY) * 100, 0, 100);
}

/**
 * Link quality in percent from a signal in dBm, with the formula cfg80211 uses for wireless extensions:
 * `clamp(dBm + 110, 0, 70) / 70`. Used when `/proc/net/wireless` has no line for the interface.
 */
export function linkQualityFromDbm(dbm: number): number {
  return (clamp(dbm + 110, 0, CFG80211_MAX_QUALITY) / CFG80211_MAX_QUALITY) * 100;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

function finite(s: string): number | undefined {
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * Combines what `/proc/net/wireless` and `iw` say about one interface into a reading, or undefined when the
 * interface is not associated. `link` undefined means iw could not be asked (missing, no nl80211, timed out):
 * then the /proc line alone decides (a non-zero quality or a dBm level counts as associated) and SSID, frequency
 * and bitrates stay empty/0. iw's signal wins over /proc's level (iw's is the averaged station signal); /proc's
 * quality wins over the one derived from the signal (it is what the driver reports).
 */
export function linuxReading(
  name: string,
  proc: ProcWirelessEntry | undefined,
  link: IwLink | undefined,
): WifiReading | undefined {
  if (link && !link.connected) return undefined;
  if (!link && !(proc && ((proc.link ?? 0) > 0 || proc.levelDbm !== undefined))) return undefined;
  const signalDbm = link?.signalDbm ?? proc?.levelDbm;
  const linkQuality =
    proc?.link !== undefined && proc.link > 0
      ? linkQualityPercent(proc.link)
      : signalDbm !== undefined
        ? linkQualityFromDbm(signalDbm)
        : 0;
  const reading: WifiReading = {
    interface: name,
    ssid: link?.ssid ?? "",
    signalDbm: signalDbm ?? 0,
    linkQuality,
    frequencyGhz: link?.freqMhz !== undefined ? link.freqMhz / 1000 : 0,
    txBitrateMbps: link?.txBitrateMbps ?? 0,
  };
  if (link?.rxBitrateMbps !== undefined) reading.rxBitrateMbps = link.rxBitrateMbps;
  return reading;
}
