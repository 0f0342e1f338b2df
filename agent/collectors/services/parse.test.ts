import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  enablementOf,
  isNoSystemdMessage,
  parseListUnitsJson,
  parseListUnitsText,
  parseSystemdVersion,
  parseUnitFilesJson,
  parseUnitFilesText,
  systemdStatus,
} from "./parse.js";
import { parseWindowsServices, windowsServiceStatus, windowsStartMode } from "./windows-parse.js";

const testdata = path.join(import.meta.dirname, "testdata");
const read = (p: string): string => fs.readFileSync(path.join(testdata, p), "utf8");

describe("systemctl parsers", () => {
  it("reads the version of the captured and hand-written `systemctl --version`", () => {
    expect(parseSystemdVersion(read("cmd/systemctl-version.txt"))).toBe(252);
    expect(parseSystemdVersion(read("cmd/handwritten-systemctl-version-245.txt"))).toBe(245);
    expect(parseSystemdVersion(read("cmd/handwritten-systemctl-version-239.txt"))).toBe(239);
    expect(parseSystemdVersion("garbage")).toBeUndefined();
  });

  it("reads list-units JSON, ignoring extra keys, and the same units from the text form", () => {
    const json = parseListUnitsJson(read("cmd/handwritten-list-units.json"));
    expect(json).toHaveLength(10);
    expect(json[2]).toEqual({
      unit: "containerd.service",
      load: "loaded",
      active: "activating",
      sub: "auto-restart",
      description: "containerd container runtime",
    });
    expect(parseListUnitsText(read("cmd/handwritten-list-units-plain.txt"))).toEqual(json);
    expect(parseListUnitsJson('[{"UNIT":"a.service","Load":"loaded"},{"load":"x"},3]')).toEqual([
      { unit: "a.service", load: "loaded", active: "", sub: "", description: "" },
    ]);
    expect(() => parseListUnitsJson("Unknown output 'json'.")).toThrow(/invalid JSON/);
    expect(() => parseListUnitsJson('{"unit":"a"}')).toThrow(/not an array/);
  });

  it("skips the ● marker and keeps an empty description", () => {
    expect(parseListUnitsText("● foo.service not-found inactive dead foo.service\nbar.service loaded active running\n\n")).toEqual([
      { unit: "foo.service", load: "not-found", active: "inactive", sub: "dead", description: "foo.service" },
      { unit: "bar.service", load: "loaded", active: "active", sub: "running", description: "" },
    ]);
  });

  it("reads the captured list-unit-files JSON and text alike, and the 239 text without presets", () => {
    const json = parseUnitFilesJson(read("cmd/systemctl-list-unit-files.json"));
    expect(json.size).toBe(113);
    expect(json.get("cgroupfs-mount.service")).toBe("masked");
    expect(json.get("getty@.service")).toBe("enabled");
    expect(json.get("dbus.service")).toBe("static");
    expect(parseUnitFilesText(read("cmd/systemctl-list-unit-files.txt"))).toEqual(json);
    expect(parseUnitFilesText(read("cmd/handwritten-list-unit-files-239.txt")).get("ssh.service")).toBe("enabled");
  });

  it("joins enablement by unit, instances through their template", () => {
    const files = parseUnitFilesJson(read("cmd/systemctl-list-unit-files.json"));
    expect(enablementOf("docker.service", files)).toBe("enabled");
    expect(enablementOf("getty@tty1.service", files)).toBe("enabled");
    expect(enablementOf("pg_receivewal@main.service", files)).toBe("disabled");
    expect(enablementOf("openvpn@client.conf.service", new Map([["openvpn@.service", "indirect"]]))).toBe("indirect");
    expect(enablementOf("foo.service", files)).toBe("");
  });

  it("maps ACTIVE to the legacy status and recognises the not-PID-1 message", () => {
    expect(["active", "reloading", "refreshing", "failed", "inactive", "activating", "deactivating", "maintenance"].map(systemdStatus)).toEqual([
      "active",
      "active",
      "active",
      "failed",
      "inactive",
      "inactive",
      "inactive",
      "inactive",
    ]);
    expect(isNoSystemdMessage(read("cmd/systemctl-list-units-nosystemd.stderr"))).toBe(true);
    expect(isNoSystemdMessage("Unit foo.service could not be found.")).toBe(false);
  });
});

describe("Windows services parser", () => {
  it("maps state, exit code and start mode", () => {
    const s = parseWindowsServices(read("windows/services.json"));
    expect(s.map((x) => [x.name, x.status, x.subStatus, x.enabled])).toEqual([
      ["wuauserv", "active", "running", "manual"],
      ["BITS", "active", "running", "auto-delayed"],
      ["Spooler", "failed", "stopped", "auto"],
      ["Fax", "inactive", "stopped", "manual"],
      ["RemoteRegistry", "inactive", "stopped", "disabled"],
      ["MSSQLSERVER", "inactive", "start-pending", "auto"],
      ["vmms", "active", "paused", "auto"],
      ["LegacyDrv", "active", "running", "system"],
    ]);
    expect(s[0]!.description).toBe("Windows Update");
  });

  it("accepts a lone object after a BOM and throws the error answer", () => {
    expect(parseWindowsServices(read("windows/services-single-bom.json"))).toEqual([
      { name: "Dnscache", description: "DNS Client", status: "active", subStatus: "running", enabled: "auto" },
    ]);
    expect(() => parseWindowsServices(read("windows/services-error.json"))).toThrow(/Win32_Service: Access is denied/);
  });

  it("treats only real failures as failed", () => {
    expect(windowsServiceStatus("Stopped", 0)).toBe("inactive");
    expect(windowsServiceStatus("Stopped", undefined)).toBe("inactive");
    expect(windowsServiceStatus("Stopped", 1066)).toBe("failed");
    expect(windowsServiceStatus("Stop Pending", 0)).toBe("inactive");
    expect(windowsServiceStatus("Unknown", 0)).toBe("inactive");
    expect(windowsStartMode("Auto", "True")).toBe("auto"); // only a real boolean counts
  });
});
