import { parseDuration } from "../../config.js";
import type { Collector, CollectorContext, NoData } from "../types.js";
import { NO_DATA } from "../types.js";
import { ChangeTracker, type Inventory } from "./inventory.js";
import { applicationListPayload } from "./payload.js";
import { DailySchedule, parseLocalTime, type LocalTime } from "./schedule.js";

/** Default local time of the nightly inventory. */
export const DEFAULT_AT = "02:00";
/** Default period after which an unchanged inventory is sent again in full. */
export const DEFAULT_FULL_RESEND_MS = 7 * 86_400_000;
/**
 * The inventory runs at wake-ups that drift by up to one interval (1 h by default, plus jitter), so "7 days since
 * the last one sent" is checked with this much slack: otherwise a run a few minutes earlier than a week ago would
 * push the resend to the 8th night.
 */
const WAKE_SLACK_MS = 3_600_000;

/** The collector's options, validated at create. */
export interface ApplicationsOptions {
  at: LocalTime;
  fullResendMs: number;
}

/**
 * Validates `collectors.applications.options`: `at` ("HH:MM" local, default "02:00") and `full_resend` (a
 * duration from 1h to 365d, default 7d). Throws a config-style error naming the option.
 */
export function parseApplicationsOptions(options: Readonly<Record<string, unknown>>): ApplicationsOptions {
  const rawAt = options["at"] ?? DEFAULT_AT;
  const at = parseLocalTime(rawAt);
  if (!at) throw new Error(`collectors.applications.options.at: ${JSON.stringify(rawAt)} is not a local time "HH:MM" (00:00–23:59)`);
  const rawResend = options["full_resend"];
  let fullResendMs = DEFAULT_FULL_RESEND_MS;
  if (rawResend !== undefined && rawResend !== null) {
    const ms = parseDuration(rawResend);
    if (ms === undefined || ms < 3_600_000 || ms > 365 * 86_400_000) {
      throw new Error(`collectors.applications.options.full_resend: ${JSON.stringify(rawResend)} is not a duration from 1h to 365d`);
    }
    fullResendMs = ms;
  }
  return { at, fullResendMs };
}

/** Test seams shared by both platforms. */
export interface ApplicationsDeps {
  /** The clock, ms since the epoch; default `Date.now`. Local dates come from the process time zone. */
  now?: () => number;
}

/**
 * The platform-independent part of the `applications` collector: the daily schedule and change detection around
 * an inventory function (Linux package managers or the Windows registry).
 *
 * - `collect` takes the inventory at the first run, then at the first run at or after `at` local time each day
 *   ({@link DailySchedule}); every other run returns at once without running anything: [] (or NO_DATA when the
 *   last inventory found no source, so the status stays "no data").
 * - A failed inventory (every source failed) throws and is not recorded as done: the next wake-up retries.
 * - After an inventory, {@link ChangeTracker} decides whether to send: the first one, any change since the last
 *   one sent, or the full resend after `full_resend`; otherwise [].
 */
export function createApplicationsCollector(
  ctx: CollectorContext,
  takeInventory: (signal: AbortSignal) => Promise<Inventory | NoData>,
  deps: ApplicationsDeps & { close?: () => Promise<void> | void } = {},
): Collector {
  const options = parseApplicationsOptions(ctx.options);
  const now = deps.now ?? Date.now;
  const schedule = new DailySchedule(options.at);
  const tracker = new ChangeTracker(Math.max(0, options.fullResendMs - WAKE_SLACK_MS));
  let lastWasNoData = false;

  return {
    async collect(signal) {
      const started = now();
      if (!schedule.due(started)) return lastWasNoData ? NO_DATA : [];
      const inventory = await takeInventory(signal);
      schedule.done(started);
      lastWasNoData = inventory === NO_DATA;
      if (inventory === NO_DATA) return NO_DATA;
      const report = tracker.next(inventory, started);
      if (!report) {
        ctx.logger.debug({ applications: inventory.apps.length }, "application inventory unchanged");
        return [];
      }
      const count = (d: string): number => report.changes.upgraded.filter((u) => u.direction === d).length;
      ctx.logger.debug(
        {
          reason: report.reason,
          applications: report.apps.length,
          added: report.changes.added.length,
          removed: report.changes.removed.length,
          upgraded: count("upgrade"),
          downgraded: count("downgrade"),
          failedSources: [...inventory.failed],
        },
        "application inventory sent",
      );
      return [applicationListPayload(report)];
    },
    close: deps.close,
  };
}
