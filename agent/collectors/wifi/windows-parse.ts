import type { WifiReading } from "./payload.js";

/**
 * Parser for `netsh wlan show interfaces` (samples: testdata/windows/, hand-written, see testdata/README.md).
 *
 * The labels are translated into the display language, and netsh writes in the console's OEM code page, which
 * the agent's command runner decodes as UTF-8: "Übertragungsrate" arrives as "\uFFFDbertragungsrate". So the
 * parser leans on structure and value shapes first and on labels only where the shape is ambiguous, with ASCII
 * fragments of the English, German, French, Spanish, Italian and Dutch labels:
 *
 * - interfaces are blank-line separated blocks of `<label> : <value>` lines that contain a GUID-shaped value;
 *   the first line of a block is the interface name;
 * - the first `xx:xx:xx:xx:xx:xx` value is the adapter's MAC, a second one is the access point's BSSID;
 * - the one value shaped `NN%` (or `NN %`) is the signal quality, and it is only printed while connected;
 * - `SSID` is the same word everywhere (else: the line just before the BSSID);
 * - rates are the labels with a unit in parentheses (`(Mbps)`, `(MBit/s)`, `(Mbits/s)`); receive/transmit by
 *   label fragment, else by order (netsh prints receive first in every language);
 * - channel by label fragment, else the first small integer between the BSSID and the rates;
 * - `Band : 5 GHz` (Windows 11) and `Rssi : -52` (Windows 11 24H2) by value shape and label.
 */

/** One interface block of `netsh wlan show interfaces`. */
export interface NetshInterface {
  name: string;
  mac?: string;
  connected: boolean;
  ssid?: string;
  bssid?: string;
  /** 0–100, from the `Signal` line. */
  signalPercent?: number;
  /** The driver's RSSI in dBm (Windows 11 24H2 and later print it). */
  rssiDbm?: number;
  channel?: number;
  bandGhz?: number;
  receiveMbps?: number;
  transmitMbps?: number;
}

/** Result of {@link parseNetshInterfaces}. */
export interface NetshResult {
  interfaces: NetshInterface[];
  /**
   * Windows 11 24H2 and later refuse WLAN details to programs without location permission and print a pointer
   * to `ms-settings:privacy-location` instead of the interfaces.
   */
  locationPermissionDenied: boolean;
}

const GUID = /^\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}?$/;
const MAC = /^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$/;
const PERCENT = /^(\d{1,3})\s*%$/;
const NUMBER = /^\d+(?:[.,]\d+)?$/;
const RATE_LABEL = /\(\s*(?:mbps|mbit\/s|mbits\/s|mb\/s|mbit\/sek)\s*\)/i;
const RECEIVE_WORDS = ["receive", "empfang", "ception", "recepci", "ricezione", "ontvang"];
const TRANSMIT_WORDS = ["transmit", "bertragung", "senden", "sende", "transmission", "transmisi", "trasmissione", "verzend"];
const CHANNEL_WORDS = ["channel", "kanal", "canal", "canale", "kanaal"];

interface Entry {
  label: string;
  value: string;
}

/** Splits `    <label>   : <value>`: the colon that follows whitespace (MAC addresses contain colons too). */
function parseLine(line: string): Entry | undefined {
  const m = /^\s+(\S.*?)\s+:(?:\s(.*))?$/.exec(line.replace(/\r$/, ""));
  if (!m) return undefined;
  return { label: m[1]!, value: (m[2] ?? "").trim() };
}

function hasWord(label: string, words: readonly string[]): boolean {
  const l = label.toLowerCase();
  return words.some((w) => l.includes(w));
}

function num(s: string): number | undefined {
  if (!NUMBER.test(s)) return undefined;
  const n = Number(s.replace(",", "."));
  return Number.isFinite(n) ? n : undefined;
}

function parseBlock(entries: readonly Entry[]): NetshInterface | undefined {
  if (!entries.some((e) => GUID.test(e.value))) return undefined;
  const iface: NetshInterface = { name: entries[0]!.value, connected: false };

  const macAt: number[] = [];
  entries.forEach((e, i) => {
    if (MAC.test(e.value)) macAt.push(i);
  });
  if (macAt[0] !== undefined) iface.mac = entries[macAt[0]]!.value.toLowerCase().replace(/-/g, ":");
  const bssidAt = macAt[1];
  if (bssidAt !== undefined) iface.bssid = entries[bssidAt]!.value.toLowerCase().replace(/-/g, ":");

  const rateAt: number[] = [];
  for (const [i, e] of entries.entries()) {
    const pct = PERCENT.exec(e.value);
    // SSID first: a network may well be called "50%".
    if (e.label.toUpperCase() === "SSID") iface.ssid = e.value;
    else if (pct && iface.signalPercent === undefined) iface.signalPercent = Math.min(100, Number(pct[1]));
    else if (/^rssi$/i.test(e.label) && /^-\d+$/.test(e.value)) iface.rssiDbm = Number(e.value);
    else if (/^\d+(?:[.,]\d+)?\s*GHz$/i.test(e.value)) iface.bandGhz = Number(e.value.replace(/\s*GHz$/i, "").replace(",", "."));
    else if (RATE_LABEL.test(e.label) && num(e.value) !== undefined) rateAt.push(i);
    else if (hasWord(e.label, CHANNEL_WORDS) && /^\d{1,3}$/.test(e.value)) iface.channel = Number(e.value);
  }
  iface.connected = iface.signalPercent !== undefined;

  // Rates: by label word, the unnamed ones by order (receive first).
  const unnamed: number[] = [];
  for (const i of rateAt) {
    const e = entries[i]!;
    const v = num(e.value)!;
    if (hasWord(e.label, RECEIVE_WORDS)) iface.receiveMbps = v;
    else if (hasWord(e.label, TRANSMIT_WORDS)) iface.transmitMbps = v;
    else unnamed.push(i);
  }
  for (const i of unnamed) {
    const v = num(entries[i]!.value)!;
    if (iface.receiveMbps === undefined) iface.receiveMbps = v;
    else if (iface.transmitMbps === undefined) iface.transmitMbps = v;
  }

  if (iface.connected && iface.ssid === undefined && bssidAt !== undefined && bssidAt > 0) {
    const before = entries[bssidAt - 1]!;
    if (!MAC.test(before.value) && !GUID.test(before.value)) iface.ssid = before.value;
  }
  if (iface.connected && iface.channel === undefined && bssidAt !== undefined) {
    const end = rateAt[0] ?? entries.length;
    for (let i = bssidAt + 1; i < end; i++) {
      const e = entries[i]!;
      if (/^\d{1,3}$/.test(e.value) && !/^rssi$/i.test(e.label)) {
        iface.channel = Number(e.value);
        break;
      }
    }
  }
  return iface;
}

/** Parses the whole output of `netsh wlan show interfaces` (any display language, see the module comment). */
export function parseNetshInterfaces(text: string): NetshResult {
  const locationPermissionDenied = /ms-settings:privacy-location/i.test(text);
  const interfaces: NetshInterface[] = [];
  let block: Entry[] = [];
  const flush = (): void => {
    const iface = parseBlock(block);
    if (iface) interfaces.push(iface);
    block = [];
  };
  for (const line of text.split("\n")) {
    if (line.trim() === "") {
      flush();
      continue;
    }
    const e = parseLine(line);
    if (e) block.push(e);
  }
  flush();
  return { interfaces, locationPermissionDenied };
}

/**
 * Estimates dBm from the Windows signal quality (WLAN_SIGNAL_QUALITY): Microsoft documents 0 as -100 dBm and 100
 * as -50 dBm, linear in between, so `dBm = quality / 2 - 100`.
 */
export function signalQualityToDbm(quality: number): number {
  return Math.min(100, Math.max(0, quality)) / 2 - 100;
}

/**
 * Centre frequency in GHz of a Wi-Fi channel. With a known band (Windows 11 prints it) the band decides; without
 * one, channels 1–14 are 2.4 GHz and 32–177 are 5 GHz (6 GHz channels reuse small numbers, so they need the band).
 * Unknown combinations give undefined.
 */
export function channelToGhz(channel: number, bandGhz?: number): number | undefined {
  const band = bandGhz ?? (channel >= 1 && channel <= 14 ? 2.4 : channel >= 32 && channel <= 177 ? 5 : undefined);
  if (band === undefined) return undefined;
  let mhz: number;
  if (band < 3) mhz = channel === 14 ? 2484 : 2407 + 5 * channel;
  else if (band < 5.9) mhz = 5000 + 5 * channel;
  else mhz = channel === 2 ? 5935 : 5950 + 5 * channel;
  return Math.round(mhz) / 1000;
}

/** The reading for one connected interface; signal from the RSSI line when present, else estimated from %. */
export function windowsReading(iface: NetshInterface): WifiReading | undefined {
  if (!iface.connected || iface.signalPercent === undefined) return undefined;
  const reading: WifiReading = {
    interface: iface.name,
    ssid: iface.ssid ?? "",
    signalDbm: iface.rssiDbm ?? signalQualityToDbm(iface.signalPercent),
    linkQuality: iface.signalPercent,
    frequencyGhz: iface.channel !== undefined ? (channelToGhz(iface.channel, iface.bandGhz) ?? 0) : 0,
    txBitrateMbps: iface.transmitMbps ?? 0,
  };
  if (iface.receiveMbps !== undefined) reading.rxBitrateMbps = iface.receiveMbps;
  return reading;
}
