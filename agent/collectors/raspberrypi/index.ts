import type { CollectorDefinition } from "../types.js";

/**
 * `raspberrypi`: firmware state of a Raspberry Pi. Runs every 10 s for the `throttle` flags (under-voltage,
 * frequency capping, throttling, soft temperature limit: now and since boot) and emits `clock` every 15 s and
 * `voltage` and `gpu` every 60 s on its own sub-cadence (options `clockInterval`, `voltageInterval`; see
 * linux.ts). Sources: `vcgencmd` with sysfs fallbacks. Linux only; anything that is not a Pi gets NO_DATA without
 * a command being run.
 */
const raspberrypi: CollectorDefinition = {
  name: "raspberrypi",
  defaultIntervalMs: 10_000,
  platforms: ["linux"],
  async create(ctx) {
    return (await import("./linux.js")).createRaspberryPiCollector(ctx);
  },
};

export default raspberrypi;
