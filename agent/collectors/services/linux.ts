import { create } from "@bufbuild/protobuf";
import fs from "node:fs";
import { ServiceInfoSchema, ServiceListSchema } from "../../../gen/spectra/v1/metrics_pb.js";
import type { ExecResult } from "../../host/host-access.js";
import { NO_DATA, type Collector, type CollectorContext } from "../types.js";
import {
  enablementOf,
  isNoSystemdMessage,
  parseListUnitsJson,
  parseListUnitsText,
  parseSystemdVersion,
  parseUnitFilesJson,
  parseUnitFilesText,
  SYSTEMD_JSON_MIN_VERSION,
  systemdStatus,
  type SystemdUnit,
} from "./parse.js";

/** Per-command timeout: systemctl answers in tens of ms; a hung D-Bus must not hold the 60 s run. */
export const SYSTEMCTL_TIMEOUT_MS = 10_000;
/** A few hundred units are ~100 KB of JSON; this is generous and still bounded. */
const MAX_OUTPUT_BYTES = 8 * 1024 * 1024;

/** Thrown inside the collector when systemctl says systemd is not PID 1. */
class NoSystemdError extends Error {}
/** systemctl could not answer at all (did not start, timed out, too much output): no format fallback helps. */
class RunError extends Error {}

/**
 * systemd services from `systemctl` (docs/data-sources.md 3.7), every command through the agent's runner with a
 * timeout and an output cap.
 *
 * - systemd must be the init system: `<rootfs>/run/systemd/system` exists (what `sd_booted()` checks). Without it
 *   — or when systemctl answers "System has not been booted with systemd as init system (PID 1)" — the run returns
 *   NO_DATA and logs once, at info, why: that is normal in containers and on other init systems.
 * - The version (`systemctl --version`, asked once) picks the format: `--output=json` from systemd 246, the
 *   `--plain --no-legend` text before (Ubuntu 20.04, RHEL 8). If JSON fails anyway, the text form is used from then
 *   on.
 * - `list-units --type=service --all` gives load/active/sub/description; `list-unit-files --type=service` gives the
 *   enablement, joined by unit name (instances use their template's state). A failing `list-unit-files` leaves
 *   enablement empty instead of failing the run (logged once).
 */
export function createLinuxServicesCollector(ctx: CollectorContext): Collector {
  const { rootfs } = ctx.host.paths;
  const marker = `${rootfs}/run/systemd/system`;
  let version: number | undefined;
  let versionKnown = false;
  let jsonBroken = false;
  let noSystemdLogged = false;
  let unitFilesFailing = false;

  const systemctl = async (args: string[], signal: AbortSignal): Promise<string> => {
    const what = `systemctl ${args.join(" ")}`;
    let r: ExecResult;
    try {
      r = await ctx.host.exec.run("systemctl", args, {
        timeoutMs: SYSTEMCTL_TIMEOUT_MS,
        maxOutputBytes: MAX_OUTPUT_BYTES,
        signal,
      });
    } catch (cause) {
      throw new RunError(`run ${what}`, { cause });
    }
    if (r.timedOut) throw new RunError(`${what}: timed out after ${SYSTEMCTL_TIMEOUT_MS} ms`);
    if (r.truncated) throw new RunError(`${what}: output exceeds ${MAX_OUTPUT_BYTES} bytes`);
    if (r.exitCode !== 0) {
      if (isNoSystemdMessage(r.stderr)) throw new NoSystemdError(r.stderr.trim());
      const detail = r.stderr.trim().slice(-300) || `signal ${r.signal ?? "none"}`;
      throw new Error(`${what}: exit ${r.exitCode ?? "null"}: ${detail}`);
    }
    return r.stdout;
  };

  const listUnits = async (json: boolean, signal: AbortSignal): Promise<SystemdUnit[]> => {
    const args = ["list-units", "--type=service", "--all"];
    return json
      ? parseListUnitsJson(await systemctl([...args, "--output=json", "--no-pager"], signal))
      : parseListUnitsText(await systemctl([...args, "--plain", "--no-legend", "--no-pager"], signal));
  };

  const listUnitFiles = async (json: boolean, signal: AbortSignal): Promise<Map<string, string>> => {
    const args = ["list-unit-files", "--type=service"];
    return json
      ? parseUnitFilesJson(await systemctl([...args, "--output=json", "--no-pager"], signal))
      : parseUnitFilesText(await systemctl([...args, "--plain", "--no-legend", "--no-pager"], signal));
  };

  const noSystemd = (why: string): typeof NO_DATA => {
    if (!noSystemdLogged) {
      noSystemdLogged = true;
      ctx.logger.info({ reason: why }, "systemd is not the init system (PID 1) on this host: services are not collected");
    }
    return NO_DATA;
  };

  const collectUnits = async (signal: AbortSignal): Promise<[SystemdUnit[], Map<string, string>]> => {
    if (!versionKnown) {
      version = parseSystemdVersion(await systemctl(["--version"], signal));
      versionKnown = true;
    }
    const json = !jsonBroken && version !== undefined && version >= SYSTEMD_JSON_MIN_VERSION;
    // Enablement is secondary: its failure leaves `enabled` empty instead of failing the run.
    const unitFiles = (asJson: boolean): Promise<Map<string, string> | Error> =>
      listUnitFiles(asJson, signal).catch((err: unknown) => {
        if (err instanceof NoSystemdError) throw err;
        return err instanceof Error ? err : new Error(String(err));
      });
    let files = unitFiles(json);
    let units: SystemdUnit[];
    try {
      units = await listUnits(json, signal);
    } catch (err) {
      await files.catch(() => undefined);
      if (!json || err instanceof NoSystemdError || err instanceof RunError || signal.aborted) throw err;
      // A systemd that reports ≥ 246 but rejects or garbles JSON (a distro patch): use the text form from now on.
      jsonBroken = true;
      ctx.logger.info({ err: (err as Error).message }, "systemctl JSON output unusable; using the text output");
      const textFiles = unitFiles(false);
      files = textFiles;
      units = await listUnits(false, signal).catch(async (e: unknown) => {
        await textFiles.catch(() => undefined);
        throw e;
      });
    }
    const result = await files;
    if (result instanceof Error) {
      if (!unitFilesFailing) ctx.logger.warn({ err: result.message }, "service enablement unavailable");
      unitFilesFailing = true;
      return [units, new Map()];
    }
    if (unitFilesFailing) ctx.logger.info("service enablement available again");
    unitFilesFailing = false;
    return [units, result];
  };

  return {
    async collect(signal) {
      try {
        if (!(await fs.promises.stat(marker)).isDirectory()) return noSystemd(`${marker} is not a directory`);
      } catch {
        return noSystemd(`no ${marker}`);
      }
      let units: SystemdUnit[];
      let files: Map<string, string>;
      try {
        [units, files] = await collectUnits(signal);
      } catch (err) {
        if (err instanceof NoSystemdError) return noSystemd(err.message);
        throw err;
      }
      noSystemdLogged = false;
      return [
        {
          case: "serviceList",
          value: create(ServiceListSchema, {
            manager: "systemd",
            services: units.map((u) =>
              create(ServiceInfoSchema, {
                name: u.unit,
                status: systemdStatus(u.active),
                subStatus: u.sub,
                loadState: u.load,
                description: u.description,
                enabled: enablementOf(u.unit, files),
              }),
            ),
          }),
        },
      ];
    },
  };
}
