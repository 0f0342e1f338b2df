import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { channelToGhz, parseNetshInterfaces, signalQualityToDbm, windowsReading } from "./windows-parse.js";

const testdata = path.join(import.meta.dirname, "testdata/windows");
const read = (f: string): string => fs.readFileSync(path.join(testdata, f), "utf8");
const readings = (f: string) =>
  parseNetshInterfaces(read(f))
    .interfaces.map(windowsReading)
    .filter((r) => r !== undefined);

describe("parseNetshInterfaces (hand-written samples)", () => {
  it("English, Windows 11 24H2: RSSI line, band, CRLF", () => {
    const r = parseNetshInterfaces(read("netsh-en.txt"));
    expect(r.locationPermissionDenied).toBe(false);
    expect(r.interfaces).toEqual([
      {
        name: "Wi-Fi",
        mac: "a4:c3:f0:11:22:33",
        connected: true,
        ssid: "HomeNet 5G",
        bssid: "3c:37:86:aa:bb:cc",
        signalPercent: 92,
        rssiDbm: -52,
        bandGhz: 5,
        channel: 36,
        receiveMbps: 1201,
        transmitMbps: 960.5,
      },
    ]);
    expect(readings("netsh-en.txt")).toEqual([
      {
        interface: "Wi-Fi",
        ssid: "HomeNet 5G",
        signalDbm: -52,
        linkQuality: 92,
        frequencyGhz: 5.18,
        txBitrateMbps: 960.5,
        rxBitrateMbps: 1201,
      },
    ]);
  });

  it("English, Windows 10: two interfaces, the disconnected one yields nothing", () => {
    const r = parseNetshInterfaces(read("netsh-en-win10-two.txt"));
    expect(r.interfaces.map((i) => [i.name, i.connected])).toEqual([
      ["Wi-Fi", true],
      ["Wi-Fi 2", false],
    ]);
    expect(readings("netsh-en-win10-two.txt")).toEqual([
      {
        interface: "Wi-Fi",
        ssid: "CafeGuest",
        signalDbm: -71,
        linkQuality: 58,
        frequencyGhz: 2.437,
        txBitrateMbps: 72.2,
        rxBitrateMbps: 72.2,
      },
    ]);
  });

  const german = {
    interface: "WLAN",
    ssid: "FRITZ!Box 7590 XY",
    signalDbm: -63,
    linkQuality: 74,
    frequencyGhz: 2.462,
    txBitrateMbps: 130,
    rxBitrateMbps: 144.4,
  };

  it("German: translated labels, MBit/s, decimal comma, `2,4 GHz`", () => {
    expect(readings("netsh-de.txt")).toEqual([german]);
  });

  it("German as the runner really decodes it (CP850 bytes read as UTF-8)", () => {
    expect(read("netsh-de-cp850.txt")).toContain("\uFFFDbertragungsrate");
    expect(readings("netsh-de-cp850.txt")).toEqual([german]);
  });

  it("French: `80 %` with a space, Mbits/s, no band line", () => {
    expect(readings("netsh-fr.txt")).toEqual([
      {
        interface: "Wi-Fi",
        ssid: "Livebox-1234",
        signalDbm: -60,
        linkQuality: 80,
        frequencyGhz: 5.22,
        txBitrateMbps: 650,
        rxBitrateMbps: 866.7,
      },
    ]);
  });

  it("Spanish", () => {
    expect(readings("netsh-es.txt")).toEqual([
      {
        interface: "Wi-Fi",
        ssid: "MOVISTAR_ABCD",
        signalDbm: -67,
        linkQuality: 66,
        frequencyGhz: 5.745,
        txBitrateMbps: 390,
        rxBitrateMbps: 433.3,
      },
    ]);
  });

  it("falls back on structure for labels in a language it does not know", () => {
    // Labels replaced by nonsense: SSID before the BSSID, channel before the rates, rates in order.
    const text = read("netsh-en-win10-two.txt")
      .replace("SSID                   :", "Xyz                    :")
      .replace("Channel                :", "Qqq                    :")
      .replace("Receive rate (Mbps)    :", "Aaa (Mbps)             :")
      .replace("Transmit rate (Mbps)   :", "Bbb (Mbps)             :");
    const [r] = parseNetshInterfaces(text).interfaces;
    expect(r).toMatchObject({ ssid: "CafeGuest", channel: 6, receiveMbps: 72.2, transmitMbps: 72.2, signalPercent: 58 });
  });

  it("no interface, a stopped WLAN service, a disconnected interface: nothing connected", () => {
    for (const f of ["netsh-no-interface.txt", "netsh-wlansvc-stopped.txt", "netsh-en-disconnected.txt"]) {
      const r = parseNetshInterfaces(read(f));
      expect(r.locationPermissionDenied).toBe(false);
      expect(r.interfaces.filter((i) => i.connected)).toEqual([]);
    }
  });

  it("recognises the 24H2 location-permission refusal", () => {
    const r = parseNetshInterfaces(read("netsh-location-permission.txt"));
    expect(r).toEqual({ interfaces: [], locationPermissionDenied: true });
  });
});

describe("signalQualityToDbm", () => {
  it("is linear from 0 % = -100 dBm to 100 % = -50 dBm", () => {
    expect(signalQualityToDbm(0)).toBe(-100);
    expect(signalQualityToDbm(100)).toBe(-50);
    expect(signalQualityToDbm(92)).toBe(-54);
    expect(signalQualityToDbm(150)).toBe(-50);
  });
});

describe("channelToGhz", () => {
  it("maps channels per band", () => {
    expect(channelToGhz(1)).toBe(2.412);
    expect(channelToGhz(14)).toBe(2.484);
    expect(channelToGhz(36)).toBe(5.18);
    expect(channelToGhz(165)).toBe(5.825);
    expect(channelToGhz(5, 6)).toBe(5.975);
    expect(channelToGhz(2, 6)).toBe(5.935);
    expect(channelToGhz(20)).toBeUndefined();
  });
});
