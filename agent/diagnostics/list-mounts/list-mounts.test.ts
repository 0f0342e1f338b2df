import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { CommandSchema, CommandType } from "../../../gen/spectra/v1/diagnostics_pb.js";
import type { HostAccess } from "../../host/host-access.js";
import { runCommand } from "../registry.js";
import { listMountsDiagnostic } from "./index.js";
import { listMountsLinux, mountTableCandidates } from "./linux.js";
import { LIST_MOUNTS_SCRIPT, listMountsWindows, parseWin32LogicalDisks } from "./windows.js";

const testdata = (p: string) => fileURLToPath(new URL(`testdata/${p}`, import.meta.url));
const host = (procRoot: string, platform: "linux" | "windows" = "linux"): HostAccess => ({
  platform,
  paths: { procRoot, sysRoot: "/sys", rootfs: "" },
  exec: { run: () => Promise.reject(new Error("no exec")) },
});
const signal = new AbortController().signal;

describe("list_mounts on Linux", () => {
  it("reads the captured mount table under the configured procfs root", async () => {
    const result = await listMountsLinux({ host: host(testdata("proc")), signal });
    expect(result.mounts).toHaveLength(26);
    expect(result.mounts[0]).toMatchObject({ mountpoint: "/proc", device: "proc", fstype: "proc", options: "rw,relatime" });
    expect(result.mounts.find((m) => m.mountpoint === "/")).toMatchObject({
      device: "/dev/vda",
      fstype: "ext4",
      options: "rw,relatime,discard,resv_strict,resuid=65534,resgid=65534",
    });
    expect(result.mounts.filter((m) => m.fstype === "overlay")).toHaveLength(3);
  });

  it("prefers the host's init mount namespace under a non-default root", () => {
    expect(mountTableCandidates("/proc")).toEqual(["/proc/self/mounts", "/proc/mounts"]);
    expect(mountTableCandidates("/host/proc")).toEqual(["/host/proc/1/mounts", "/host/proc/self/mounts", "/host/proc/mounts"]);
  });

  it("fails with the paths it tried", async () => {
    await expect(listMountsLinux({ host: host("/nonexistent"), signal })).rejects.toThrow(
      "read mount table: /nonexistent/1/mounts: ENOENT; /nonexistent/self/mounts: ENOENT; /nonexistent/mounts: ENOENT",
    );
  });

  it("runs through the registry as a command", async () => {
    const outcome = await runCommand(
      create(CommandSchema, { id: "x", type: CommandType.LIST_MOUNTS, params: { case: "listMounts", value: {} } }),
      { host: host(testdata("proc")), logger: pino({ level: "silent" }), timeoutMs: 5_000 },
    );
    expect(outcome.error).toBe("");
    expect(outcome.result.case === "listMounts" && outcome.result.value.mounts.length).toBe(26);
    const failed = await runCommand(create(CommandSchema, { id: "y", type: CommandType.LIST_MOUNTS }), {
      host: host("/nonexistent"),
      logger: pino({ level: "silent" }),
      timeoutMs: 5_000,
    });
    expect(failed.error).toContain("read mount table");
    expect(failed.type).toBe(CommandType.LIST_MOUNTS);
  });
});

describe("list_mounts on Windows (hand-written samples)", () => {
  it("parses Win32_LogicalDisk JSON", () => {
    const result = parseWin32LogicalDisks(readFileSync(testdata("win32-logicaldisk.json"), "utf8"));
    expect(result.mounts.map((m) => ({ ...m, $typeName: undefined }))).toEqual([
      { $typeName: undefined, mountpoint: "C:\\", device: "C:", fstype: "NTFS", options: "fixed,label=Windows" },
      { $typeName: undefined, mountpoint: "D:\\", device: "D:", fstype: "", options: "cdrom" },
      { $typeName: undefined, mountpoint: "E:\\", device: "E:", fstype: "FAT32", options: "removable,rw,label=USB STICK" },
      { $typeName: undefined, mountpoint: "Z:\\", device: "\\\\fileserver\\share", fstype: "NTFS", options: "network,ro,label=share" },
    ]);
  });

  it("accepts a single object with a BOM", () => {
    const result = parseWin32LogicalDisks(readFileSync(testdata("win32-logicaldisk-single.json"), "utf8"));
    expect(result.mounts).toHaveLength(1);
    expect(result.mounts[0]).toMatchObject({ mountpoint: "C:\\", device: "C:", fstype: "NTFS", options: "fixed" });
  });

  it("reports a PowerShell error", () => {
    expect(() => parseWin32LogicalDisks('{"error":"Access denied"}')).toThrow("Win32_LogicalDisk: Access denied");
    expect(parseWin32LogicalDisks("")).toMatchObject({ mounts: [] });
  });

  it("queries PowerShell with the constant script", async () => {
    const scripts: string[] = [];
    const ps = {
      query: async (script: string) => {
        scripts.push(script);
        return readFileSync(testdata("win32-logicaldisk.json"), "utf8");
      },
    };
    const result = await listMountsWindows({ host: host("/proc", "windows"), signal, logger: pino({ level: "silent" }) }, ps);
    expect(scripts).toEqual([LIST_MOUNTS_SCRIPT]);
    expect(result.mounts).toHaveLength(4);
    expect(listMountsDiagnostic.platforms).toEqual(["linux", "windows"]);
  });
});
