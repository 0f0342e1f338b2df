import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  DPKG_FIELDS,
  dpkgFormat,
  maintainerName,
  parseApkInstalled,
  parseDpkgQuery,
  parseFlatpakList,
  parseFlatpakRefs,
  parsePacmanQuery,
  parseRpmQuery,
  parseSnapList,
  RPM_QUERY_FORMAT,
} from "./parse.js";

const testdata = path.join(import.meta.dirname, "testdata");
const read = (f: string): string => fs.readFileSync(path.join(testdata, f), "utf8");

describe("parseDpkgQuery (captured on Debian 12)", () => {
  it("the 6-column capture: 40 installed packages with architecture, no vendor field asked", () => {
    const fields = ["Package", "Version", "Architecture", "Installed-Size", "db:Status-Abbrev", "binary:Summary"];
    const apps = parseDpkgQuery(read("dpkg/dpkg-query-W.head40.tsv"), fields);
    expect(apps).toHaveLength(40);
    expect(apps[0]).toEqual({ name: "adduser", version: "3.134", source: "dpkg", arch: "all" });
    expect(apps.find((a) => a.name === "apparmor")).toEqual({ name: "apparmor", version: "3.0.8-3", source: "dpkg", arch: "amd64" });
    for (const a of apps) {
      expect(a.name).toMatch(/^[a-z0-9][a-z0-9+.-]*$/);
      expect(a.version).toMatch(/^[0-9][A-Za-z0-9.+~:-]*$/);
    }
  });

  it("the 3-column capture with its 'no packages found' stderr: the found packages still parse", () => {
    expect(read("dpkg/dpkg-query-W-some.stderr")).toMatch(/no packages found matching nonexistent-pkg\nexit=1/);
    expect(parseDpkgQuery(read("dpkg/dpkg-query-W-some.tsv"), ["Package", "Version", "db:Status-Abbrev"])).toEqual([
      { name: "bash", version: "5.2.15-2+b8", source: "dpkg" },
      { name: "docker.io", version: "20.10.24+dfsg1-1+deb12u1+b6", source: "dpkg" },
    ]);
  });

  it("the collector's format: installed (ii, hi) only, maintainer without address, multiarch twice", () => {
    const text = [
      "libc6\t2.36-9+deb12u4\tamd64\tii \tGNU Libc Maintainers <debian-glibc@lists.debian.org>",
      "libc6\t2.36-9+deb12u4\ti386\tii \tGNU Libc Maintainers <debian-glibc@lists.debian.org>",
      "linux-image-amd64\t6.1.76-1\tamd64\thi \tDebian Kernel Team <debian-kernel@lists.debian.org>",
      "old-removed\t1.0-1\tamd64\trc \tSomeone <a@b>",
      "half-unpacked\t2.0-1\tamd64\tiU \tSomeone <a@b>",
      "not-installed\t\tamd64\tun \t",
      "noaddr\t1\tall\tii \t",
      "",
    ].join("\n");
    expect(parseDpkgQuery(text)).toEqual([
      { name: "libc6", version: "2.36-9+deb12u4", source: "dpkg", arch: "amd64", vendor: "GNU Libc Maintainers" },
      { name: "libc6", version: "2.36-9+deb12u4", source: "dpkg", arch: "i386", vendor: "GNU Libc Maintainers" },
      { name: "linux-image-amd64", version: "6.1.76-1", source: "dpkg", arch: "amd64", vendor: "Debian Kernel Team" },
      { name: "noaddr", version: "1", source: "dpkg", arch: "all" },
    ]);
  });

  it("builds the format dpkg-query expands itself (literal backslash escapes, no shell)", () => {
    expect(dpkgFormat(DPKG_FIELDS)).toBe(
      "${Package}\\t${Version}\\t${Architecture}\\t${db:Status-Abbrev}\\t${Maintainer}\\n",
    );
    expect(maintainerName("Debian Adduser Developers <adduser@packages.debian.org>")).toBe("Debian Adduser Developers");
    expect(maintainerName("  <only@address>  ")).toBeUndefined();
  });
});

describe("Linux package sources (hand-written samples)", () => {
  it("rpm: epoch kept, gpg-pubkey skipped, (none) vendor dropped, two architectures", () => {
    expect(RPM_QUERY_FORMAT).toBe("%{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\t%{ARCH}\\t%{VENDOR}\\n");
    const apps = parseRpmQuery(read("rpm/qa.tsv"));
    expect(apps.map((a) => `${a.name}.${a.arch}`)).toEqual([
      "bash.x86_64",
      "glibc.x86_64",
      "glibc.i686",
      "openssl-libs.x86_64",
      "tzdata.noarch",
      "mytool.x86_64",
    ]);
    expect(apps[3]).toEqual({ name: "openssl-libs", version: "1:3.0.7-25.el9_3", source: "rpm", arch: "x86_64", vendor: "Red Hat, Inc." });
    expect(apps[5]).toEqual({ name: "mytool", version: "0.3-1", source: "rpm", arch: "x86_64" });
  });

  it("apk: records from the database file, first value per letter", () => {
    expect(parseApkInstalled(read("apk/installed"))).toEqual([
      { name: "musl", version: "1.2.4_git20230717-r4", source: "apk", arch: "x86_64", vendor: "Timo Teräs" },
      { name: "busybox", version: "1.36.1-r15", source: "apk", arch: "x86_64", vendor: "Sören Tempel" },
      { name: "ca-certificates-bundle", version: "20240226-r0", source: "apk", arch: "x86_64", vendor: "Natanael Copa" },
      { name: "py3-pip-pyc", version: "23.3.1-r0", source: "apk", arch: "noarch", vendor: "Keith Maxwell" },
    ]);
  });

  it("pacman -Q", () => {
    const apps = parsePacmanQuery(read("pacman/Q.txt"));
    expect(apps).toHaveLength(7);
    expect(apps[2]).toEqual({ name: "linux", version: "6.7.5.arch1-1", source: "pacman" });
  });

  it("snap list: validation marks stripped, '-' publisher is none; empty list", () => {
    const apps = parseSnapList(read("snap/list.txt"));
    expect(apps).toHaveLength(7);
    expect(apps.find((a) => a.name === "firefox")).toEqual({ name: "firefox", version: "123.0.1-1", source: "snap", vendor: "mozilla" });
    expect(apps.find((a) => a.name === "vlc")?.vendor).toBe("videolan");
    expect(apps.find((a) => a.name === "my-local-tool")).toEqual({ name: "my-local-tool", version: "0.1", source: "snap" });
    expect(parseSnapList(read("snap/list-ascii.txt"))).toEqual([
      { name: "core20", version: "20240111", source: "snap", vendor: "canonical" },
      { name: "lxd", version: "5.0.3-80aeff7", source: "snap", vendor: "canonical" },
      { name: "htop", version: "3.3.0", source: "snap", vendor: "maxiberta" },
    ]);
    expect(parseSnapList("")).toEqual([]);
  });

  it("flatpak: tab-separated columns, empty version kept, header skipped; old ref format", () => {
    const apps = parseFlatpakList(read("flatpak/list-columns.tsv"));
    expect(apps).toEqual([
      { name: "org.mozilla.firefox", version: "123.0", source: "flatpak", arch: "x86_64", vendor: "flathub" },
      { name: "org.gnome.Calculator", version: "45.0.2", source: "flatpak", arch: "x86_64", vendor: "flathub" },
      { name: "com.example.NoVersion", version: "", source: "flatpak", arch: "x86_64", vendor: "local-repo" },
      { name: "org.gnome.Calculator", version: "44.0", source: "flatpak", arch: "x86_64", vendor: "gnome-nightly" },
    ]);
    expect(parseFlatpakList(read("flatpak/list-columns-header.tsv"))).toEqual([
      { name: "org.videolan.VLC", version: "3.0.20", source: "flatpak", arch: "aarch64", vendor: "flathub" },
    ]);
    expect(parseFlatpakRefs(read("flatpak/list-old.txt"))).toEqual([
      { name: "org.gnome.Builder", version: "", source: "flatpak", arch: "x86_64" },
      { name: "org.gnome.Recipes", version: "", source: "flatpak", arch: "x86_64" },
    ]);
  });
});
