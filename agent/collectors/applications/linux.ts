import fs from "node:fs/promises";
import type { ExecResult } from "../../host/host-access.js";
import { commandFailed, isNotInstalled } from "../../host/exec-errors.js";
import type { Collector, CollectorContext, NoData } from "../types.js";
import { NO_DATA } from "../types.js";
import { createApplicationsCollector, type ApplicationsDeps } from "./collector.js";
import type { App, Inventory } from "./inventory.js";
import {
  DPKG_FIELDS,
  dpkgFormat,
  FLATPAK_COLUMNS,
  parseApkInstalled,
  parseDpkgQuery,
  parseFlatpakList,
  parseFlatpakRefs,
  parsePacmanQuery,
  parseRpmQuery,
  parseSnapList,
  RPM_QUERY_FORMAT,
} from "./parse.js";

/**
 * Ceiling for one inventory command: they read a local database (dpkg-query 16 ms for 745 packages here, rpm -qa
 * a few seconds on a slow board; snap and flatpak ask a local daemon). The scheduler's per-run timeout (30 s by
 * default) aborts them earlier through the signal; this ceiling only matters when that timeout is raised.
 */
const COMMAND_TIMEOUT_MS = 60_000;
/** A desktop with 5,000 rpm packages lists about 500 KB; this only guards against a runaway. */
const MAX_OUTPUT_BYTES = 32 * 1024 * 1024;

/** Test seams for the Linux applications collector. */
export interface LinuxApplicationsDeps extends ApplicationsDeps {
  /** Prefix for the files read (`/lib/apk/db/installed`); default "". */
  fileRoot?: string;
}

interface Env {
  /** Runs a command; undefined when the program is not installed. */
  run(file: string, args: readonly string[]): Promise<ExecResult | undefined>;
  /** Reads a file; undefined when it does not exist. */
  read(path: string): Promise<string | undefined>;
}

/** A package source: its applications, or undefined when it does not exist on this host. */
type Source = (env: Env) => Promise<App[] | undefined>;

function ok(res: ExecResult): boolean {
  return res.exitCode === 0 && !res.timedOut && !res.truncated;
}

/**
 * dpkg: `dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\t${db:Status-Abbrev}\t${Maintainer}\n'`
 * (installed packages only, see {@link parseDpkgQuery}). dpkg-query exits 1 with "no packages found matching"
 * when nothing matched (an empty database); that is an empty list, not a failure.
 */
const dpkg: Source = async (env) => {
  const res = await env.run("dpkg-query", ["-W", "-f", dpkgFormat(DPKG_FIELDS)]);
  if (!res) return undefined;
  const nothingFound = res.exitCode === 1 && /no packages found/i.test(res.stderr) && !res.timedOut && !res.truncated;
  if (!ok(res) && !nothingFound) throw commandFailed("dpkg-query -W", res, MAX_OUTPUT_BYTES);
  return parseDpkgQuery(res.stdout, DPKG_FIELDS);
};

/** rpm: `rpm -qa --qf <RPM_QUERY_FORMAT>` (see {@link parseRpmQuery}); an empty database is an empty list. */
const rpm: Source = async (env) => {
  const res = await env.run("rpm", ["-qa", "--qf", RPM_QUERY_FORMAT]);
  if (!res) return undefined;
  if (!ok(res)) throw commandFailed("rpm -qa", res, MAX_OUTPUT_BYTES);
  return parseRpmQuery(res.stdout);
};

/** apk: its database file `/lib/apk/db/installed` (see {@link parseApkInstalled}); no file, no apk. */
const apk: Source = async (env) => {
  const text = await env.read("/lib/apk/db/installed");
  return text === undefined ? undefined : parseApkInstalled(text);
};

/** pacman: `pacman -Q` (see {@link parsePacmanQuery}). */
const pacman: Source = async (env) => {
  const res = await env.run("pacman", ["-Q"]);
  if (!res) return undefined;
  // pacman -Q exits 1 with no output on an empty database.
  if (!ok(res) && !(res.exitCode === 1 && res.stdout.trim() === "" && res.stderr.trim() === "")) throw commandFailed("pacman -Q", res, MAX_OUTPUT_BYTES);
  return parsePacmanQuery(res.stdout);
};

/**
 * snap: `snap list` (see {@link parseSnapList}). It asks snapd over its socket, so a stopped snapd is a failure
 * of this source ("cannot communicate with server"), which leaves the other sources alone.
 */
const snap: Source = async (env) => {
  const res = await env.run("snap", ["list"]);
  if (!res) return undefined;
  if (!ok(res)) throw commandFailed("snap list", res, MAX_OUTPUT_BYTES);
  return parseSnapList(res.stdout);
};

/**
 * flatpak: `flatpak list --app --columns=application,version,arch,origin` (see {@link parseFlatpakList}); flatpak
 * before 1.2 has no `--columns` and gets a plain `flatpak list --app` (see {@link parseFlatpakRefs}).
 */
const flatpak: Source = async (env) => {
  const res = await env.run("flatpak", ["list", "--app", `--columns=${FLATPAK_COLUMNS.join(",")}`]);
  if (!res) return undefined;
  if (ok(res)) return parseFlatpakList(res.stdout);
  if (!res.timedOut && /unknown option|columns/i.test(res.stderr)) {
    const old = await env.run("flatpak", ["list", "--app"]);
    if (old && ok(old)) return parseFlatpakRefs(old.stdout);
    if (old) throw commandFailed("flatpak list --app", old, MAX_OUTPUT_BYTES);
  }
  throw commandFailed("flatpak list --app --columns", res, MAX_OUTPUT_BYTES);
};

/** Every source, each tried on every inventory run; whichever exist answer. */
const SOURCES: ReadonlyArray<readonly [string, Source]> = [
  ["dpkg", dpkg],
  ["rpm", rpm],
  ["apk", apk],
  ["pacman", pacman],
  ["snap", snap],
  ["flatpak", flatpak],
];

/**
 * Takes the Linux inventory: every source in parallel (one process each; hosts usually have one or two), each
 * command through the command runner with an argument array, a 60 s ceiling and a 32 MiB output cap, under the
 * run's signal. A source exists when its program starts (ENOENT: absent), with no separate probe; since the
 * collector runs nothing between nightly inventories, a package manager installed later is found the next
 * night. One failing source is logged once (when it starts failing, and when it recovers) and is reported in
 * `failed`; the others still count. Every existing source failing throws; no source at all is NO_DATA.
 */
export function createLinuxInventory(
  ctx: CollectorContext,
  fileRoot = "",
): (signal: AbortSignal) => Promise<Inventory | NoData> {
  const failing = new Set<string>();
  return async (signal) => {
    const env: Env = {
      async run(file, args) {
        try {
          return await ctx.host.exec.run(file, args, { timeoutMs: COMMAND_TIMEOUT_MS, maxOutputBytes: MAX_OUTPUT_BYTES, signal });
        } catch (err) {
          if (isNotInstalled(err)) return undefined;
          throw new Error(`run ${file} ${args.join(" ")}`, { cause: err });
        }
      },
      async read(file) {
        const p = `${fileRoot}${file}`;
        try {
          const st = await fs.stat(p);
          if (st.size > MAX_OUTPUT_BYTES) throw new Error(`${p}: ${st.size} bytes, more than ${MAX_OUTPUT_BYTES}`);
          return await fs.readFile(p, { encoding: "utf8", signal });
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
          throw new Error(`read ${p}`, { cause: err });
        }
      },
    };
    const results = await Promise.all(
      SOURCES.map(async ([name, source]) => {
        try {
          return { name, apps: await source(env) };
        } catch (error) {
          return { name, error };
        }
      }),
    );
    if (signal.aborted) throw new Error("applications inventory aborted", { cause: signal.reason });

    const apps: App[] = [];
    const failed = new Set<string>();
    const errors: string[] = [];
    let present = 0;
    for (const r of results) {
      if ("error" in r) {
        present++;
        failed.add(r.name);
        errors.push(`${r.name}: ${describe(r.error)}`);
        continue;
      }
      if (r.apps === undefined) continue;
      present++;
      apps.push(...r.apps);
    }
    if (present === 0) return NO_DATA;
    if (failed.size === present) {
      for (const name of failed) failing.add(name);
      // Thrown, not logged: the scheduler reports a failing collector.
      throw new Error(`every package source failed: ${errors.join("; ")}`);
    }
    for (const r of results) {
      if ("error" in r && !failing.has(r.name)) {
        failing.add(r.name);
        ctx.logger.warn({ source: r.name, err: r.error }, "application source failed; its previous inventory is kept until it answers");
      } else if (!("error" in r) && failing.delete(r.name)) {
        ctx.logger.info({ source: r.name }, "application source answers again");
      }
    }
    return { apps, failed };
  };
}

/** "message: cause message" for one error chain, for the all-sources-failed message. */
function describe(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e instanceof Error && parts.length < 3; e = e.cause) parts.push(e.message);
  return parts.length > 0 ? parts.join(": ") : String(err);
}

/** Installed packages on Linux from dpkg, rpm, apk, pacman, snap and flatpak (see {@link createLinuxInventory}). */
export function createLinuxApplicationsCollector(ctx: CollectorContext, deps: LinuxApplicationsDeps = {}): Collector {
  return createApplicationsCollector(ctx, createLinuxInventory(ctx, deps.fileRoot ?? ""), deps);
}
