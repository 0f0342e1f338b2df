import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseWindowsUninstall, UNINSTALL_PATHS, UNINSTALL_SCRIPT } from "./windows-parse.js";

const testdata = path.join(import.meta.dirname, "testdata/windows");
const read = (f: string): string => fs.readFileSync(path.join(testdata, f), "utf8");

describe("parseWindowsUninstall (hand-written samples)", () => {
  it("keeps what Apps & features shows; x86 for the 32-bit view; a BOM; non-ASCII names", () => {
    const apps = parseWindowsUninstall(read("uninstall.json"));
    expect(apps.map((a) => a.name)).toEqual([
      "Microsoft Office Professional Plus 2016",
      "7-Zip 23.01 (x64)",
      "Microsoft Visual C++ 2015-2022 Redistributable (x86) - 14.38.33135",
      "Notepad++ (32-bit x86)",
      "Lecteur multimédia Ünïcode – Édition française",
      "Microsoft OneDrive",
      "Spotify",
      "Microsoft OneDrive",
    ]);
    expect(apps[1]).toEqual({ name: "7-Zip 23.01 (x64)", version: "23.01", source: "registry", vendor: "Igor Pavlov" });
    expect(apps[3]).toEqual({ name: "Notepad++ (32-bit x86)", version: "8.6.2", source: "registry", vendor: "Notepad++ Team", arch: "x86" });
    expect(apps[4]?.vendor).toBe("Société Exemple");
    expect(apps[6]).toEqual({ name: "Spotify", version: "", source: "registry" });
    expect(apps.filter((a) => a.arch === "x86")).toHaveLength(3);
  });

  it("a single entry as an object; [] ; the session's error answer", () => {
    expect(parseWindowsUninstall(read("uninstall-single.json"))).toHaveLength(1);
    expect(parseWindowsUninstall(read("uninstall-empty.json"))).toEqual([]);
    expect(() => parseWindowsUninstall(read("uninstall-error.json"))).toThrow(/Uninstall registry keys: Requested registry access/);
  });
});

describe("UNINSTALL_SCRIPT", () => {
  it("reads the three Uninstall views from the registry and never Win32_Product", () => {
    for (const p of Object.values(UNINSTALL_PATHS)) expect(UNINSTALL_SCRIPT).toContain(`'${p}'`);
    expect(UNINSTALL_SCRIPT).toContain("HKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\*");
    expect(UNINSTALL_SCRIPT).toContain("Get-ItemProperty -Path $v[1] -ErrorAction SilentlyContinue");
    expect(UNINSTALL_SCRIPT).toContain("[string]$e.PSPath -like '*HKEY_USERS\\.DEFAULT\\*'");
    expect(UNINSTALL_SCRIPT).toContain("ConvertTo-Json -Compress -InputObject $list");
    expect(UNINSTALL_SCRIPT).not.toMatch(/Win32_Product|Get-WmiObject|Get-CimInstance/i);
  });
});
