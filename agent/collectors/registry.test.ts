import { describe, expect, it } from "vitest";
import { silentLogger } from "../../common/logger.js";
import { createHostAccess } from "../host/index.js";
import { collectorNames, collectorRegistry, isCollectorName, loadCollector } from "./registry.js";

const EXPECTED = {
  cpu: 5_000,
  memory: 10_000,
  disk: 60_000,
  disk_io: 5_000,
  network: 5_000,
  system: 300_000,
  processes: 15_000,
  services: 60_000,
  temperature: 10_000,
  wifi: 30_000,
  containers: 60_000,
  applications: 3_600_000,
  raspberrypi: 10_000,
  update_status: 3_600_000,
} as const;

/** Collectors that only exist on Linux. */
const LINUX_ONLY = new Set(["raspberrypi"]);

describe("collectorRegistry", () => {
  it("loads every collector lazily under its own name with its default interval", async () => {
    expect(collectorNames).toEqual(Object.keys(EXPECTED));
    for (const name of collectorNames) {
      const def = await loadCollector(name);
      expect(def.name).toBe(name);
      expect(def.defaultIntervalMs).toBe(EXPECTED[name as keyof typeof EXPECTED]);
      expect(def.platforms).toEqual(LINUX_ONLY.has(name) ? ["linux"] : ["linux", "windows"]);
    }
  });

  it("recognises registered names only", () => {
    expect(isCollectorName("disk_io")).toBe(true);
    expect(isCollectorName("toString")).toBe(false);
    expect(isCollectorName("disk-io")).toBe(false);
    expect(typeof collectorRegistry.cpu).toBe("function");
  });

  it("creates every collector for Windows without starting anything until the first run", async () => {
    const host = createHostAccess({}, { platform: "windows" });
    for (const name of collectorNames) {
      const def = await loadCollector(name);
      const c = await def.create({ host, logger: silentLogger(), options: {} });
      expect(typeof c.collect).toBe("function");
      await c.close?.();
    }
  });
});
