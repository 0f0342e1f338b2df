/**
 * Pure parsers for the Linux package managers' "what would be upgraded" output. Samples: testdata/<manager>/
 * (apt: captured on the project's Debian 12 VM; the others hand-written, see testdata/README.md). All run with
 * the runner's C locale, so the few English words matched here are stable.
 */

/** One package with an update available. */
export interface PendingPackage {
  name: string;
  /** The version that would be installed. */
  version?: string;
  security: boolean;
}

/**
 * `apt-get -s dist-upgrade` (sample: testdata/apt/apt-get-s-dist-upgrade.txt). Each upgrade is
 * `Inst <pkg> [<installed>] (<candidate> <origin>:<version>/<archive>[, …] [<arch>])`, optionally followed by
 * dependency notes in brackets. Lines without `[<installed>]` are new packages pulled in, not updates, and are
 * skipped, as are `Remv`/`Conf`. An update is a security update when one of its origins or archives contains
 * `-security` (`Debian-Security:12/stable-security`, `Ubuntu:22.04/jammy-security`, ESM's `…-apps-security`).
 */
export function parseAptSimulation(text: string): PendingPackage[] {
  const out: PendingPackage[] = [];
  for (const line of text.split("\n")) {
    const m = /^Inst (\S+) \[([^\]]*)\] \((\S+)(.*?)\s*\[[^\]]*\]\)/.exec(line);
    if (!m) continue;
    out.push({ name: m[1]!, version: m[3]!, security: /-security/i.test(m[4]!) });
  }
  return out;
}

/** One line of `dnf check-update`: `<name>.<arch> <version> <repo>`. */
export interface DnfUpdate {
  name: string;
  arch: string;
  version: string;
  repo: string;
}

/** Lines dnf/yum print around the package rows (some even with `-q`). */
const DNF_NOTICE = /^(Last metadata expiration check|Security:|Updating Subscription|Repositories loaded|Updating and loading)/i;

/**
 * `dnf -q check-update` / `yum -q check-update` (sample: testdata/dnf/check-update.txt): three columns per
 * package; a long name makes dnf wrap the row over two lines, so tokens are gathered across lines until a row
 * has three. The `Obsoleting Packages` section repeats packages and ends the list; notices are skipped.
 */
export function parseDnfCheckUpdate(text: string): DnfUpdate[] {
  const out: DnfUpdate[] = [];
  let pending: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (/^Obsoleting Packages/i.test(line)) break;
    if (line === "" || DNF_NOTICE.test(line)) continue;
    pending.push(...line.split(/\s+/));
    if (pending.length < 3) continue;
    const [nameArch, version, repo] = pending;
    pending = [];
    const dot = nameArch!.lastIndexOf(".");
    // Not a package row (a notice that slipped through): drop it rather than invent a package.
    if (dot <= 0 || !/^[0-9]/.test(version!) || repo === undefined) continue;
    out.push({ name: nameArch!.slice(0, dot), arch: nameArch!.slice(dot + 1), version: version!, repo });
  }
  return out;
}

/**
 * `dnf updateinfo list --security` (dnf 4: `<advisory> <type> <nevra>`; dnf 5: `<advisory> <type> <severity>
 * <nevra> <issued>`; sample: testdata/dnf/updateinfo-security.txt): the `<name>.<arch>` of every package an
 * advisory fixes. The NEVRA is the last token shaped `name-[epoch:]version-release.arch`.
 */
export function parseDnfSecurityPackages(text: string): Set<string> {
  const out = new Set<string>();
  for (const line of text.split("\n")) {
    const tokens = line.trim().split(/\s+/);
    for (let i = tokens.length - 1; i >= 0; i--) {
      const m = /^(.+)-[^-]+-[^-]+\.([A-Za-z0-9_]+)$/.exec(tokens[i]!);
      if (m) {
        out.add(`${m[1]}.${m[2]}`);
        break;
      }
    }
  }
  return out;
}

/**
 * `checkupdates` or `pacman -Qu` (sample: testdata/pacman/checkupdates.txt): `<name> <old> -> <new>`, possibly
 * followed by `[ignored]`. Arch has no security metadata, so nothing is marked security.
 */
export function parsePacmanUpdates(text: string): PendingPackage[] {
  const out: PendingPackage[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\S+) (\S+) -> (\S+)/.exec(line.trim());
    if (m) out.push({ name: m[1]!, version: m[3]!, security: false });
  }
  return out;
}

/**
 * `apk version -l '<'` (sample: testdata/apk/version.txt): a header, then `<name>-<ver>-r<N>  <  <newver>`.
 * The name is the first column without its `-<ver>-r<N>` suffix. Alpine has no security metadata in apk.
 */
export function parseApkVersion(text: string): PendingPackage[] {
  const out: PendingPackage[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\S+)\s+<\s+(\S+)/.exec(line.trim());
    if (!m) continue;
    const name = m[1]!.replace(/-[^-]+-r\d+$/, "");
    out.push({ name, version: m[2]!, security: false });
  }
  return out;
}

/** Splits zypper's `a | b | c` table rows into cells, with the header row's cell names. */
function zypperTable(text: string): { header: string[]; rows: string[][] } {
  let header: string[] = [];
  const rows: string[][] = [];
  for (const line of text.split("\n")) {
    if (!line.includes("|")) continue;
    const cells = line.split("|").map((c) => c.trim());
    if (cells.every((c) => /^-*$/.test(c))) continue;
    if (header.length === 0 && cells.includes("Name")) {
      header = cells;
      continue;
    }
    rows.push(cells);
  }
  return { header, rows };
}

/**
 * `zypper -q list-updates` (sample: testdata/zypper/list-updates.txt): a `|` table with the columns
 * `S | Repository | Name | Current Version | Available Version | Arch`, found by header name.
 */
export function parseZypperUpdates(text: string): PendingPackage[] {
  const { header, rows } = zypperTable(text);
  const nameAt = header.indexOf("Name");
  const versionAt = header.indexOf("Available Version");
  if (nameAt < 0) return [];
  return rows
    .filter((r) => r[nameAt])
    .map((r) => ({
      name: r[nameAt]!,
      ...(versionAt >= 0 && r[versionAt] ? { version: r[versionAt] } : {}),
      security: false,
    }));
}

/**
 * The number of security patches `zypper -q list-patches --category security` lists as needed (sample:
 * testdata/zypper/list-patches-security.txt). zypper counts security fixes per patch, not per package.
 */
export function parseZypperSecurityPatchCount(text: string): number {
  const { header, rows } = zypperTable(text);
  const categoryAt = header.indexOf("Category");
  const statusAt = header.indexOf("Status");
  return rows.filter(
    (r) => (categoryAt < 0 || r[categoryAt] === "security") && (statusAt < 0 || r[statusAt] === "needed"),
  ).length;
}
