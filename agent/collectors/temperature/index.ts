import type { CollectorDefinition } from "../types.js";

/**
 * `temperature`: every 10 s, one payload per sensor with its current, max and critical temperature in °C. Linux
 * walks the hwmon and thermal-zone classes of sysfs (all chips and inputs, labelled or not, NVMe and drives
 * included); Windows asks WMI for ACPI thermal zones. No sensor is normal (VMs, containers): NO_DATA.
 */
const temperature: CollectorDefinition = {
  name: "temperature",
  defaultIntervalMs: 10_000,
  platforms: ["linux", "windows"],
  async create(ctx) {
    if (ctx.host.platform === "windows") return (await import("./windows.js")).createWindowsTemperatureCollector(ctx);
    return (await import("./linux.js")).createLinuxTemperatureCollector(ctx);
  },
};

export default temperature;
