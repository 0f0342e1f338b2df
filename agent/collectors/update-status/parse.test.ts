import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  parseApkVersion,
  parseAptSimulation,
  parseDnfCheckUpdate,
  parseDnfSecurityPackages,
  parsePacmanUpdates,
  parseZypperSecurityPatchCount,
  parseZypperUpdates,
} from "./parse.js";

const testdata = path.join(import.meta.dirname, "testdata");
const read = (f: string): string => fs.readFileSync(path.join(testdata, f), "utf8");

describe("parseAptSimulation", () => {
  it("captured Debian 12 `apt-get -s dist-upgrade`: 126 upgrades, 71 from the security archive", () => {
    const p = parseAptSimulation(read("captured/apt-get-s-dist-upgrade.txt"));
    expect(p).toHaveLength(126);
    expect(p.filter((x) => x.security)).toHaveLength(71);
    expect(p.find((x) => x.name === "openssl")).toEqual({ name: "openssl", version: "3.0.22-1~deb12u2", security: true });
    expect(p.find((x) => x.name === "bash")).toEqual({ name: "bash", version: "5.2.15-2+b13", security: false });
    // Trailing dependency notes after the parenthesis do not disturb the match.
    expect(p.find((x) => x.name === "libext2fs2")).toEqual({ name: "libext2fs2", version: "1.47.0-2+b2", security: false });
  });

  it("captured run without package lists prints no Inst line (the collector turns that into an error)", () => {
    expect(parseAptSimulation(read("captured/apt-get-s-dist-upgrade-no-lists.txt"))).toEqual([]);
  });

  it("Ubuntu (hand-written): new packages and removals are not updates; ESM security counts", () => {
    expect(parseAptSimulation(read("apt/ubuntu-dist-upgrade.txt"))).toEqual([
      { name: "libc6", version: "2.35-0ubuntu3.6", security: true },
      { name: "openssl", version: "3.0.2-0ubuntu1.14", security: true },
      { name: "linux-image-generic", version: "5.15.0.92.89", security: true },
      { name: "snapd", version: "2.61.3+22.04", security: false },
      { name: "tzdata", version: "2024a-0ubuntu0.22.04", security: false },
      { name: "libcurl4:i386", version: "7.81.0-1ubuntu1.15", security: true },
    ]);
  });
});

describe("dnf (hand-written)", () => {
  it("check-update: joins wrapped rows, stops at Obsoleting Packages", () => {
    expect(parseDnfCheckUpdate(read("dnf/check-update.txt"))).toEqual([
      { name: "NetworkManager", arch: "x86_64", version: "1:1.42.2-8.el9_3", repo: "baseos" },
      { name: "kernel", arch: "x86_64", version: "5.14.0-362.18.1.el9_3", repo: "baseos" },
      { name: "openssl-libs", arch: "x86_64", version: "1:3.0.7-25.el9_3", repo: "baseos" },
      { name: "python3-systemd-very-long-package-name-for-wrapping", arch: "noarch", version: "235-1.el9", repo: "appstream" },
      { name: "vim-minimal", arch: "x86_64", version: "2:8.2.2637-20.el9_1", repo: "baseos" },
    ]);
    expect(parseDnfCheckUpdate("")).toEqual([]);
  });

  it("updateinfo --security: name.arch of each fixed package, dnf 4 and dnf 5 layouts", () => {
    expect([...parseDnfSecurityPackages(read("dnf/updateinfo-security.txt"))]).toEqual([
      "openssl-libs.x86_64",
      "kernel.x86_64",
      "kernel-core.x86_64",
    ]);
    expect([...parseDnfSecurityPackages(read("dnf/updateinfo-security-dnf5.txt"))]).toEqual(["openssl-libs.x86_64", "curl.x86_64"]);
  });
});

describe("pacman, apk, zypper (hand-written)", () => {
  it("checkupdates and pacman -Qu", () => {
    expect(parsePacmanUpdates(read("pacman/checkupdates.txt"))).toEqual([
      { name: "linux", version: "6.7.5.arch1-1", security: false },
      { name: "openssl", version: "3.2.1-1", security: false },
      { name: "python-requests", version: "2.31.0-2", security: false },
    ]);
    expect(parsePacmanUpdates(read("pacman/pacman-Qu.txt")).map((p) => p.name)).toEqual(["linux", "firefox"]);
  });

  it("apk version -l '<': names without version suffix", () => {
    expect(parseApkVersion(read("apk/version.txt"))).toEqual([
      { name: "busybox", version: "1.36.1-r19", security: false },
      { name: "libcrypto3", version: "3.1.4-r5", security: false },
      { name: "ca-certificates-bundle", version: "20240226-r0", security: false },
    ]);
  });

  it("zypper list-updates and needed security patches", () => {
    expect(parseZypperUpdates(read("zypper/list-updates.txt"))).toEqual([
      { name: "libopenssl3", version: "3.1.4-9.3", security: false },
      { name: "openssl-3", version: "3.1.4-9.3", security: false },
      { name: "tzdata", version: "2024a-1.1", security: false },
    ]);
    expect(parseZypperSecurityPatchCount(read("zypper/list-patches-security.txt"))).toBe(1);
    expect(parseZypperUpdates("")).toEqual([]);
  });
});
