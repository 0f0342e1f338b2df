import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseWindowsUpdateResult, SECURITY_CATEGORY_ID, windowsUpdateScript } from "./windows-parse.js";

const testdata = path.join(import.meta.dirname, "testdata/windows");
const read = (f: string): string => fs.readFileSync(path.join(testdata, f), "utf8");

describe("parseWindowsUpdateResult (hand-written samples)", () => {
  it("an array of updates with a BOM; security from the script's flag; KB as version", () => {
    expect(parseWindowsUpdateResult(read("search-two.json"))).toEqual({
      rebootRequired: true,
      packages: [
        {
          name: "2024-02 Cumulative Update for Windows 11 Version 23H2 for x64-based Systems (KB5034765)",
          version: "KB5034765",
          security: true,
        },
        { name: "Intel Corporation - Display - 31.0.101.5186", security: false },
      ],
    });
  });

  it("a single update serialised as an object (PowerShell 5.1), non-ASCII title", () => {
    const r = parseWindowsUpdateResult(read("search-single.json"));
    expect(r.packages).toEqual([
      {
        name: "Mise à jour de la plateforme antimalware Microsoft Defender - KB4052623 (version 4.18.24010.12)",
        version: "KB4052623",
        security: false,
      },
    ]);
  });

  it("no updates as [] or null", () => {
    expect(parseWindowsUpdateResult(read("search-none.json"))).toEqual({ packages: [], rebootRequired: false });
    expect(parseWindowsUpdateResult(read("search-null.json"))).toEqual({ packages: [], rebootRequired: false });
  });

  it("the script's error answer and a failed search throw", () => {
    expect(() => parseWindowsUpdateResult(read("search-error.json"))).toThrow(/0x8024402C/);
    expect(() => parseWindowsUpdateResult(read("search-failed.json"))).toThrow(/failed/);
    expect(() => parseWindowsUpdateResult("not json")).toThrow(/invalid JSON/);
  });
});

describe("windowsUpdateScript", () => {
  it("is constant apart from the online switch, and searches what it says", () => {
    const offline = windowsUpdateScript(false);
    const online = windowsUpdateScript(true);
    expect(offline).toContain("$searcher.Online = $false");
    expect(online).toContain("$searcher.Online = $true");
    expect(online.replace("$searcher.Online = $true", "$searcher.Online = $false")).toBe(offline);
    expect(offline).toContain("Search('IsInstalled=0 and IsHidden=0')");
    expect(offline).toContain(SECURITY_CATEGORY_ID);
    expect(offline).toContain("Auto Update\\RebootRequired");
    expect(offline).toContain("Component Based Servicing\\RebootPending");
  });
});
