import fs from "node:fs";
import os from "node:os";
import type { CommandRunner, ExecResult } from "../../host/host-access.js";
import { commandFailed, isNotInstalled } from "../../host/exec-errors.js";
import type { Collector, CollectorContext, NoData } from "../types.js";
import { NO_DATA } from "../types.js";
import { BackgroundCheck } from "./background-check.js";
import {
  parseApkVersion,
  parseAptSimulation,
  parseDnfCheckUpdate,
  parseDnfSecurityPackages,
  parsePacmanUpdates,
  parseZypperSecurityPatchCount,
  parseZypperUpdates,
  type PendingPackage,
} from "./parse.js";
import { updateStatusPayload, type UpdateReport } from "./payload.js";

/**
 * Ceiling for one package-manager command. They read local metadata only (apt-get -s 2 s here, dnf 5–40 s on
 * small boards); the ceiling exists so that a hung one (a stuck NFS /var, a lock) is killed, not to pace them.
 */
const LOCAL_TIMEOUT_MS = 5 * 60_000;
/** checkupdates syncs a private copy of the pacman database from the mirrors: network-bound. */
const NETWORK_TIMEOUT_MS = 2 * 60_000;
/** needs-restarting / zypper needs-rebooting look at the rpm database and /proc. */
const REBOOT_CHECK_TIMEOUT_MS = 60_000;
/** A full upgrade list of thousands of packages is a few hundred KB; this only guards against a runaway. */
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/** Test seams for the Linux update collector. */
export interface LinuxUpdateDeps {
  /** Prefix for the files read (`/var/lib/apt/lists`, reboot flags, `/lib/modules`); default "". */
  fileRoot?: string;
  /** The running kernel release; default `os.release()`. */
  kernelRelease?: () => string;
}

/** What one package manager reports, before the reboot flag files are added. */
interface ManagerResult {
  packages: PendingPackage[];
  /** Defaults to the number of packages marked security. */
  securityCount?: number;
  /** The manager's own reboot check, when it has one and it answered. */
  rebootRequired?: boolean;
  /** Check whether the running kernel's modules are gone (Arch, Alpine remove them on a kernel upgrade). */
  kernelCheck?: boolean;
}

interface Env {
  run(file: string, args: readonly string[], timeoutMs: number): Promise<ExecResult | undefined>;
  fileRoot: string;
  logger: CollectorContext["logger"];
}

/** A package manager: undefined when its program is not installed (then the next one is tried). */
type Manager = (env: Env) => Promise<ManagerResult | undefined>;


/**
 * apt: `apt-get -s -o Debug::NoLocking=true dist-upgrade`, a simulation (no root, no lock, no network) over the
 * package lists of the last `apt-get update`, which the agent never runs: the answer is as fresh as the system's
 * own periodic refresh (apt-daily.timer, unattended-upgrades). `dist-upgrade` rather than `upgrade` so updates
 * that need a new dependency (kernel meta-packages, "kept back") count too, as update-notifier counts them.
 * Without lists apt says "0 upgraded", which would be a lie: that is an error instead.
 */
const apt: Manager = async (env) => {
  const what = "apt-get -s dist-upgrade";
  const res = await env.run(
    "apt-get",
    ["-s", "-o", "Debug::NoLocking=true", "-o", "APT::Get::Show-User-Simulation-Note=false", "dist-upgrade"],
    LOCAL_TIMEOUT_MS,
  );
  if (!res) return undefined;
  if (res.exitCode !== 0 || res.timedOut || res.truncated) throw commandFailed(what, res, MAX_OUTPUT_BYTES);
  const listsDir = `${env.fileRoot}/var/lib/apt/lists`;
  let lists: string[];
  try {
    lists = fs.readdirSync(listsDir).filter((f) => /_Packages(\.[a-z0-9]+)?$/.test(f));
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code !== "ENOENT") throw new Error(`list ${listsDir}`, { cause });
    lists = [];
  }
  if (lists.length === 0) {
    throw new Error(
      `apt: no package lists in ${listsDir}: the package index was never downloaded (apt-get update), ` +
        "so pending updates cannot be known",
    );
  }
  return { packages: parseAptSimulation(res.stdout) };
};

/**
 * dnf and yum: `<dnf> -q -C check-update` (exit 100: updates, 0: none) from the metadata cache only (`-C`: no
 * network, like apt), plus `updateinfo list --security` to mark security updates, plus `needs-restarting -r`.
 */
function rpmManager(program: "dnf" | "yum"): Manager {
  return async (env) => {
    const what = `${program} check-update`;
    const res = await env.run(program, ["-q", "-C", "check-update"], LOCAL_TIMEOUT_MS);
    if (!res) return undefined;
    if ((res.exitCode !== 0 && res.exitCode !== 100) || res.timedOut || res.truncated) {
      if (/cache/i.test(res.stderr)) {
        throw new Error(`${what}: no metadata cache yet (${program} makecache); pending updates cannot be known`, {
          cause: commandFailed(what, res, MAX_OUTPUT_BYTES),
        });
      }
      throw commandFailed(what, res, MAX_OUTPUT_BYTES);
    }
    const updates = parseDnfCheckUpdate(res.stdout);

    let security = new Set<string>();
    const sec = await env.run(program, ["-q", "-C", "updateinfo", "list", "--security"], LOCAL_TIMEOUT_MS);
    if (sec && sec.exitCode === 0 && !sec.timedOut) security = parseDnfSecurityPackages(sec.stdout);
    // Without updateinfo (a repository without advisories, an old yum) nothing is marked security.
    else env.logger.debug({ exitCode: sec?.exitCode }, `${program} updateinfo gave no answer; no security marks`);

    return {
      packages: updates.map((u) => ({ name: u.name, version: u.version, security: security.has(`${u.name}.${u.arch}`) })),
      ...(await rpmRebootCheck(env, program)),
    };
  };
}

/** `needs-restarting -r` (yum-utils / dnf-utils), else the dnf plugin; decided by its words, not its exit code. */
async function rpmRebootCheck(env: Env, program: "dnf" | "yum"): Promise<{ rebootRequired?: boolean }> {
  for (const [file, args] of [
    ["needs-restarting", ["-r"]],
    [program, ["-q", "-C", "needs-restarting", "-r"]],
  ] as const) {
    const res = await env.run(file, args, REBOOT_CHECK_TIMEOUT_MS);
    if (!res || res.timedOut) continue;
    // Exit 1 also means "no such command" for dnf without the plugin, so the sentence decides.
    if (/Reboot is required/i.test(res.stdout)) return { rebootRequired: true };
    if (/Reboot should not be necessary/i.test(res.stdout)) return { rebootRequired: false };
  }
  return {};
}

/**
 * pacman: `checkupdates` (pacman-contrib) when installed: it syncs a private copy of the sync database, so it
 * sees updates published since the last `pacman -Sy` without touching the real one (exit 2: none). Without it,
 * or when it fails (no network), `pacman -Qu` against the last sync. No security metadata on Arch.
 */
const pacman: Manager = async (env) => {
  const cu = await env.run("checkupdates", [], NETWORK_TIMEOUT_MS);
  if (cu && !cu.timedOut && !cu.truncated && (cu.exitCode === 0 || cu.exitCode === 2)) {
    return { packages: parsePacmanUpdates(cu.stdout), kernelCheck: true };
  }
  if (cu) env.logger.debug({ exitCode: cu.exitCode, timedOut: cu.timedOut }, "checkupdates failed; using pacman -Qu");
  const res = await env.run("pacman", ["-Qu"], LOCAL_TIMEOUT_MS);
  if (!res) return undefined;
  // pacman -Qu exits 1 with no output when nothing is upgradable.
  if (res.timedOut || res.truncated || (res.exitCode !== 0 && !(res.exitCode === 1 && res.stdout.trim() === ""))) {
    throw commandFailed("pacman -Qu", res, MAX_OUTPUT_BYTES);
  }
  return { packages: parsePacmanUpdates(res.stdout), kernelCheck: true };
};

/** apk: `apk version -l '<'` against the cached indexes of the last `apk update` (no network). */
const apk: Manager = async (env) => {
  const what = "apk version -l <";
  const args = ["version", "-l", "<"];
  // apk lives in /sbin, which an unprivileged PATH may lack.
  const res = (await env.run("apk", args, LOCAL_TIMEOUT_MS)) ?? (await env.run("/sbin/apk", args, LOCAL_TIMEOUT_MS));
  if (!res) return undefined;
  if (res.exitCode !== 0 || res.timedOut || res.truncated) throw commandFailed(what, res, MAX_OUTPUT_BYTES);
  if (/APKINDEX/.test(res.stderr) && /No such file|not found|unable/i.test(res.stderr)) {
    throw new Error(`${what}: no package index cached (apk update); pending updates cannot be known`, {
      cause: commandFailed(what, res, MAX_OUTPUT_BYTES),
    });
  }
  return { packages: parseApkVersion(res.stdout), kernelCheck: true };
};

/** zypper exit codes that still come with a valid list (100/101: updates/security updates needed, 106: repos skipped). */
const ZYPPER_OK = new Set([0, 100, 101, 106]);

/**
 * zypper: `zypper -n --no-refresh -q list-updates` (no repository refresh: the last one counts), the number of
 * needed security patches from `list-patches --category security`, and `zypper needs-rebooting` (exit 102).
 */
const zypper: Manager = async (env) => {
  const base = ["--non-interactive", "--no-refresh", "--quiet"];
  const res = await env.run("zypper", [...base, "list-updates"], LOCAL_TIMEOUT_MS);
  if (!res) return undefined;
  if (!ZYPPER_OK.has(res.exitCode ?? -1) || res.timedOut || res.truncated) throw commandFailed("zypper list-updates", res, MAX_OUTPUT_BYTES);
  const packages = parseZypperUpdates(res.stdout);
  const sec = await env.run("zypper", [...base, "list-patches", "--category", "security"], LOCAL_TIMEOUT_MS);
  const securityCount = sec && !sec.timedOut && ZYPPER_OK.has(sec.exitCode ?? -1) ? parseZypperSecurityPatchCount(sec.stdout) : 0;
  const reboot = await env.run("zypper", ["--non-interactive", "needs-rebooting"], REBOOT_CHECK_TIMEOUT_MS);
  const rebootRequired = reboot?.exitCode === 102 ? true : reboot?.exitCode === 0 ? false : undefined;
  return { packages, securityCount, ...(rebootRequired !== undefined ? { rebootRequired } : {}) };
};

/** Tried in this order; the first whose program exists is the host's package manager. */
const MANAGERS: ReadonlyArray<readonly [string, Manager]> = [
  ["apt", apt],
  ["dnf", rpmManager("dnf")],
  ["yum", rpmManager("yum")],
  ["pacman", pacman],
  ["apk", apk],
  ["zypper", zypper],
];

/**
 * The distribution's reboot flags: `/run/reboot-required` (Debian/Ubuntu, written by package hooks; its `.pkgs`
 * names the packages) and `/run/reboot-needed` (SUSE). `/var/run` is checked too for systems where it is not a
 * symlink to `/run`.
 */
function rebootFlagged(root: string): boolean {
  for (const dir of ["/run", "/var/run"]) {
    if (fs.existsSync(`${root}${dir}/reboot-required`) || fs.existsSync(`${root}${dir}/reboot-needed`)) return true;
    try {
      if (fs.readFileSync(`${root}${dir}/reboot-required.pkgs`, "utf8").trim() !== "") return true;
    } catch {
      /* no .pkgs file: nothing pending */
    }
  }
  return false;
}

/**
 * True when the running kernel's module directory is gone while others exist: Arch and Alpine delete the old
 * kernel's modules on upgrade, so the running kernel is outdated. A missing modules directory (a container) is false.
 */
function kernelReplaced(root: string, release: string): boolean {
  for (const dir of ["/usr/lib/modules", "/lib/modules"]) {
    let entries: string[];
    try {
      entries = fs.readdirSync(`${root}${dir}`);
    } catch {
      continue;
    }
    if (entries.length > 0) return !entries.includes(release);
  }
  return false;
}

/**
 * Pending updates on Linux. The package manager is found by trying apt, dnf, yum, pacman, apk and zypper in
 * that order (the first whose program exists, kept for later runs); none → NO_DATA. Every command goes through
 * the command runner with an argument array, a ceiling timeout and an output cap; none refreshes the package
 * index (only pacman's `checkupdates` syncs a private database copy). Reboot required = the distribution's
 * flag files, or the manager's own check (dnf/yum `needs-restarting -r`, `zypper needs-rebooting`), or, for
 * pacman and apk, the running kernel's modules being gone. Checks that outlive the collector timeout carry over
 * to the next run (see {@link BackgroundCheck}).
 */
export function createLinuxUpdateStatusCollector(ctx: CollectorContext, deps: LinuxUpdateDeps = {}): Collector {
  const fileRoot = deps.fileRoot ?? "";
  const kernelRelease = deps.kernelRelease ?? (() => os.release());
  const exec: CommandRunner = ctx.host.exec;
  let known: readonly [string, Manager] | undefined;

  const check = async (signal: AbortSignal): Promise<UpdateReport | NoData> => {
    const env: Env = {
      fileRoot,
      logger: ctx.logger,
      async run(file, args, timeoutMs) {
        try {
          return await exec.run(file, args, { timeoutMs, maxOutputBytes: MAX_OUTPUT_BYTES, signal });
        } catch (err) {
          if (isNotInstalled(err)) return undefined;
          throw new Error(`run ${file} ${args.join(" ")}`, { cause: err });
        }
      },
    };
    for (const entry of known ? [known] : MANAGERS) {
      const [name, manager] = entry;
      const result = await manager(env);
      if (!result) continue;
      known = entry;
      const rebootRequired =
        rebootFlagged(fileRoot) ||
        result.rebootRequired === true ||
        (result.kernelCheck === true && kernelReplaced(fileRoot, kernelRelease()));
      return {
        packageManager: name,
        packages: result.packages,
        securityCount: result.securityCount ?? result.packages.filter((p) => p.security).length,
        rebootRequired,
      };
    }
    // The known manager vanished (uninstalled): look again next time.
    known = undefined;
    return NO_DATA;
  };
  const background = new BackgroundCheck(check);

  return {
    async collect(signal) {
      const report = await background.next(signal);
      return report === NO_DATA ? NO_DATA : [updateStatusPayload(report)];
    },
    close() {
      background.close();
    },
  };
}
