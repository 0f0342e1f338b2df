import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  decodeIwEscapes,
  linkQualityFromDbm,
  linkQualityPercent,
  linuxReading,
  parseIwLink,
  parseProcNetWireless,
} from "./parse.js";

const testdata = path.join(import.meta.dirname, "testdata");
const read = (f: string): string => fs.readFileSync(path.join(testdata, f), "utf8");

describe("parseProcNetWireless", () => {
  it("reads link quality and dBm level of one interface (hand-written)", () => {
    expect(parseProcNetWireless(read("linux/proc-net-wireless-one"))).toEqual([
      { interface: "wlan0", link: 54, levelDbm: -56 },
    ]);
  });

  it("keeps an unassociated interface without level", () => {
    const e = parseProcNetWireless(read("linux/proc-net-wireless-two"));
    expect(e.map((x) => x.interface)).toEqual(["wlan0", "wlp3s0"]);
    expect(e[1]).toEqual({ interface: "wlp3s0", link: 0 });
  });

  it("gives nothing for the headers-only file and for the captured no-Wi-Fi answer", () => {
    expect(parseProcNetWireless(read("linux/proc-net-wireless-headers-only"))).toEqual([]);
    // Captured: the file does not exist there; the capture holds cat's error text, which must not parse.
    expect(parseProcNetWireless(read("captured/proc-net-wireless.txt"))).toEqual([]);
    expect(parseProcNetWireless("")).toEqual([]);
  });

  it("maps an unsigned-byte level back to dBm", () => {
    expect(parseProcNetWireless(" wlan0: 0000   54.  200.  0  0 0 0 0 0 0\n")[0]!.levelDbm).toBe(-56);
  });
});

describe("parseIwLink", () => {
  it("parses a connected VHT link (hand-written)", () => {
    expect(parseIwLink(read("linux/iw-link-connected.txt"))).toEqual({
      connected: true,
      bssid: "3c:37:86:aa:bb:cc",
      ssid: "HomeNet 5G",
      freqMhz: 5180,
      signalDbm: -56,
      rxBitrateMbps: 866.7,
      txBitrateMbps: 780,
    });
  });

  it("parses a legacy 2.4 GHz link with an integer freq and no rx bitrate", () => {
    const l = parseIwLink(read("linux/iw-link-legacy.txt"));
    expect(l).toMatchObject({ connected: true, ssid: "CafeGuest", freqMhz: 2437, signalDbm: -71, txBitrateMbps: 72.2 });
    expect(l.rxBitrateMbps).toBeUndefined();
  });

  it("decodes escaped SSID bytes as UTF-8", () => {
    expect(parseIwLink(read("linux/iw-link-ssid-escapes.txt")).ssid).toBe("Café ✓ ");
    expect(decodeIwEscapes("a\\x5cb")).toBe("a\\b");
    expect(decodeIwEscapes("plain")).toBe("plain");
  });

  it("says not connected for `Not connected.`, iw errors and the captured nl80211 failure", () => {
    expect(parseIwLink(read("linux/iw-link-not-connected.txt"))).toEqual({ connected: false });
    expect(parseIwLink(read("captured/iw-dev.txt"))).toEqual({ connected: false });
    expect(parseIwLink(read("linux/iw-dev-no-device.stderr"))).toEqual({ connected: false });
  });
});

describe("link quality", () => {
  it("scales the cfg80211 0–70 quality and derives it from dBm the way cfg80211 does", () => {
    expect(linkQualityPercent(70)).toBe(100);
    expect(linkQualityPercent(54)).toBeCloseTo(77.14, 2);
    expect(linkQualityPercent(90)).toBe(100);
    // -56 dBm → 54/70, the same as the /proc value in the sample.
    expect(linkQualityFromDbm(-56)).toBeCloseTo(linkQualityPercent(54), 9);
    expect(linkQualityFromDbm(-120)).toBe(0);
    expect(linkQualityFromDbm(-20)).toBe(100);
  });
});

describe("linuxReading", () => {
  const proc = parseProcNetWireless(read("linux/proc-net-wireless-one"))[0]!;
  const link = parseIwLink(read("linux/iw-link-connected.txt"));

  it("merges iw and /proc", () => {
    expect(linuxReading("wlan0", proc, link)).toEqual({
      interface: "wlan0",
      ssid: "HomeNet 5G",
      signalDbm: -56,
      linkQuality: linkQualityPercent(54),
      frequencyGhz: 5.18,
      txBitrateMbps: 780,
      rxBitrateMbps: 866.7,
    });
  });

  it("reports /proc alone when iw is unavailable", () => {
    expect(linuxReading("wlan0", proc, undefined)).toEqual({
      interface: "wlan0",
      ssid: "",
      signalDbm: -56,
      linkQuality: linkQualityPercent(54),
      frequencyGhz: 0,
      txBitrateMbps: 0,
    });
  });

  it("derives quality from iw's signal when /proc has no line", () => {
    expect(linuxReading("wlan0", undefined, link)!.linkQuality).toBeCloseTo(linkQualityPercent(54), 9);
  });

  it("skips interfaces that are not associated", () => {
    expect(linuxReading("wlan0", proc, { connected: false })).toBeUndefined();
    expect(linuxReading("wlp3s0", { interface: "wlp3s0", link: 0 }, undefined)).toBeUndefined();
    expect(linuxReading("wlan0", undefined, undefined)).toBeUndefined();
  });
});
