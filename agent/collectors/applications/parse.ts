/**
 * Pure parsers for the Linux package inventories. Samples: testdata/ (dpkg captured on the project's Debian 12 VM;
 * rpm, apk, pacman, snap and flatpak hand-written, see testdata/README.md). Commands run with the runner's C
 * locale, so the few English words matched here (headers) are stable.
 */
import type { App } from "./inventory.js";

/** The dpkg-query fields the collector asks for, in order. */
export const DPKG_FIELDS = ["Package", "Version", "Architecture", "db:Status-Abbrev", "Maintainer"] as const;

/**
 * The `dpkg-query -W -f` format for `fields`: `${Package}\t${Version}…\n`, with the backslash escapes as
 * literal text (dpkg-query expands them itself, as it does when the format comes from a shell in single quotes).
 */
export function dpkgFormat(fields: readonly string[]): string {
  return `${fields.map((f) => `\${${f}}`).join("\\t")}\\n`;
}

/** "Debian Adduser Developers <adduser@packages.debian.org>" → "Debian Adduser Developers" (no addresses sent). */
export function maintainerName(text: string): string | undefined {
  const name = text.replace(/<[^>]*>/g, "").replace(/\s+/g, " ").trim();
  return name === "" || name === "(none)" ? undefined : name;
}

/**
 * `dpkg-query -W -f <dpkgFormat(fields)>` output (samples: testdata/dpkg/, real captures in two field layouts),
 * one tab-separated line per package with the columns named by `fields`. When the status is among the fields,
 * only installed packages are kept: the second letter of `db:Status-Abbrev` (the current state) is `i`, which
 * is the usual `ii` and held `hi`; `rc` (removed, config files left), `un` and half-installed or unpacked states
 * are skipped. `Maintainer` becomes the vendor without its e-mail address; the architecture is kept as is
 * (`amd64`, `all`; a multiarch `libc6` appears once per architecture).
 */
export function parseDpkgQuery(text: string, fields: readonly string[] = DPKG_FIELDS): App[] {
  const col = (name: string): number => fields.indexOf(name);
  const iName = col("Package");
  const iVersion = col("Version");
  const iArch = col("Architecture");
  const iStatus = col("db:Status-Abbrev");
  const iMaint = col("Maintainer");
  if (iName < 0 || iVersion < 0) throw new Error("parseDpkgQuery: the fields must include Package and Version");
  const out: App[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const cols = line.split("\t");
    if (cols.length < fields.length) continue;
    // A tab inside the last field (a summary) must not shift anything: rejoin the tail.
    if (cols.length > fields.length) cols.splice(fields.length - 1, cols.length, cols.slice(fields.length - 1).join("\t"));
    const name = cols[iName]!.trim();
    const version = cols[iVersion]!.trim();
    if (name === "") continue;
    if (iStatus >= 0 && cols[iStatus]![1] !== "i") continue;
    const arch = iArch >= 0 ? cols[iArch]!.trim() : "";
    const vendor = iMaint >= 0 ? maintainerName(cols[iMaint]!) : undefined;
    out.push({ name, version, source: "dpkg", ...(vendor !== undefined ? { vendor } : {}), ...(arch !== "" ? { arch } : {}) });
  }
  return out;
}

/**
 * The `rpm -qa --qf` format: name, `[epoch:]version-release` (the epoch only when the package has one, as dnf
 * shows it: rpm's `%|TAG?{present}:{absent}|` expression), architecture and vendor, tab-separated.
 */
export const RPM_QUERY_FORMAT = "%{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\t%{ARCH}\\t%{VENDOR}\\n";

/**
 * `rpm -qa --qf RPM_QUERY_FORMAT` (sample: testdata/rpm/qa.tsv, hand-written). rpm prints `(none)` for an absent
 * tag; those become undefined. `gpg-pubkey` entries are imported signing keys, not software: skipped.
 */
export function parseRpmQuery(text: string): App[] {
  const out: App[] = [];
  const opt = (v: string | undefined): string | undefined => {
    const t = v?.trim() ?? "";
    return t === "" || t === "(none)" ? undefined : t;
  };
  for (const line of text.split("\n")) {
    const [name, version, arch, vendor] = line.split("\t").map((s) => s.trim());
    if (!name || version === undefined || name === "gpg-pubkey") continue;
    const a = opt(arch);
    const v = opt(vendor);
    out.push({ name, version, source: "rpm", ...(v !== undefined ? { vendor: v } : {}), ...(a !== undefined ? { arch: a } : {}) });
  }
  return out;
}

/**
 * apk's database, `/lib/apk/db/installed` (sample: testdata/apk/installed, hand-written): one record per package,
 * records separated by a blank line, one `<letter>:<value>` per line: `P` name, `V` version (`1.36.1-r15`), `A`
 * architecture, `m` maintainer. Reading the file avoids splitting `apk info -v`'s `name-version-rN`, which is
 * ambiguous for names that contain `-<digit>`.
 */
export function parseApkInstalled(text: string): App[] {
  const out: App[] = [];
  let rec: Record<string, string> = {};
  const flush = (): void => {
    const name = rec["P"];
    const version = rec["V"];
    if (name && version !== undefined) {
      const vendor = rec["m"] !== undefined ? maintainerName(rec["m"]) : undefined;
      const arch = rec["A"];
      out.push({ name, version, source: "apk", ...(vendor !== undefined ? { vendor } : {}), ...(arch ? { arch } : {}) });
    }
    rec = {};
  };
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "") {
      flush();
      continue;
    }
    const m = /^([A-Za-z]):(.*)$/.exec(line);
    // Only the first value of a letter counts (file lists repeat F:/R: many times; we do not need them).
    if (m && rec[m[1]!] === undefined) rec[m[1]!] = m[2]!.trim();
  }
  flush();
  return out;
}

/** `pacman -Q` (sample: testdata/pacman/Q.txt, hand-written): `<name> <version>` per line. */
export function parsePacmanQuery(text: string): App[] {
  const out: App[] = [];
  for (const line of text.split("\n")) {
    const [name, version, ...rest] = line.trim().split(/\s+/);
    if (!name || !version || rest.length > 0) continue;
    out.push({ name, version, source: "pacman" });
  }
  return out;
}

/**
 * `snap list` (samples: testdata/snap/, hand-written): a header `Name Version Rev Tracking Publisher Notes`, then
 * one row per installed snap (its current revision). None of the columns contains spaces. The publisher carries
 * a validation mark (`✓`/`**` verified, `✪`/`*` starred) that is not part of the name; `-` means none. "No snaps
 * are installed yet" (stderr, exit 0) is an empty list.
 */
export function parseSnapList(text: string): App[] {
  const out: App[] = [];
  let header = false;
  for (const line of text.split("\n")) {
    const cols = line.trim().split(/\s+/);
    if (!header) {
      header = cols[0] === "Name" && cols[1] === "Version";
      continue;
    }
    const [name, version, , , publisher] = cols;
    if (!name || version === undefined) continue;
    // Escaped, not literal: a bundle with one non-ASCII character is held by V8 as a two-byte string (twice the
    // memory, docs/benchmarks.md).
    const vendor = publisher?.replace(/(\u2713|\u272a|\*)+$/u, "");
    out.push({ name, version, source: "snap", ...(vendor && vendor !== "-" ? { vendor } : {}) });
  }
  return out;
}

/** The flatpak columns the collector asks for, in order. */
export const FLATPAK_COLUMNS = ["application", "version", "arch", "origin"] as const;

/**
 * `flatpak list --app --columns=application,version,arch,origin` (sample: testdata/flatpak/list-columns.tsv,
 * hand-written): tab-separated when stdout is not a terminal, possibly with a header line. The version may be
 * empty (apps without AppStream release data). The origin (the remote: `flathub`) becomes the vendor, the
 * closest thing flatpak lists; an app installed both system-wide and per user appears twice.
 */
export function parseFlatpakList(text: string): App[] {
  const out: App[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const cols = (line.includes("\t") ? line.split("\t") : line.trim().split(/\s+/)).map((s) => s.trim());
    const [app, version = "", arch = "", origin = ""] = cols;
    if (!app || /^Application( ID)?$/i.test(app) || !/^[A-Za-z0-9_.-]+$/.test(app)) continue;
    out.push({ name: app, version, source: "flatpak", ...(origin ? { vendor: origin } : {}), ...(arch ? { arch } : {}) });
  }
  return out;
}

/**
 * The default output of `flatpak list --app` from flatpak before 1.2 (no `--columns`; sample:
 * testdata/flatpak/list-old.txt, hand-written): `<app>/<arch>/<branch>` then options. No version there.
 */
export function parseFlatpakRefs(text: string): App[] {
  const out: App[] = [];
  for (const line of text.split("\n")) {
    const ref = line.trim().split(/\s+/)[0] ?? "";
    const m = /^(?:app\/)?([A-Za-z0-9_.-]+)\/([^/\s]+)\/([^/\s]+)$/.exec(ref);
    if (!m) continue;
    out.push({ name: m[1]!, version: "", source: "flatpak", arch: m[2]! });
  }
  return out;
}
