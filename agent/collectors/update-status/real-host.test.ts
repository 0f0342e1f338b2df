import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../../common/logger.js";
import type { UpdateStatus } from "../../../gen/spectra/v1/metrics_pb.js";
import { createHostAccess } from "../../host/index.js";
import { NO_DATA, type Payload } from "../types.js";
import updateStatus from "./index.js";

/**
 * The real collector on the machine running the tests (Debian in CI): the real command runner, the real
 * apt-get. `apt-get -s` reads the local package lists only, so this sends nothing over the network. With lists
 * it must report a sane apt status; without lists it must fail with the clear error, never hang.
 */
const hasApt = fs.existsSync("/usr/bin/apt-get");
const hasLists = (() => {
  try {
    return fs.readdirSync("/var/lib/apt/lists").some((f) => /_Packages(\.[a-z0-9]+)?$/.test(f));
  } catch {
    return false;
  }
})();

describe("update_status on this host", () => {
  it.runIf(hasApt && process.platform === "linux")("reports apt's pending updates, or a clear error without lists", async () => {
    const c = await updateStatus.create({ host: createHostAccess(), logger: silentLogger(), options: {} });
    const started = performance.now();
    try {
      let out: Payload[] | typeof NO_DATA | Error;
      try {
        out = await c.collect(AbortSignal.timeout(25_000));
      } catch (err) {
        out = err as Error;
      }
      expect(performance.now() - started).toBeLessThan(25_000);
      expect(out instanceof Error).toBe(!hasLists);
      if (out instanceof Error) {
        expect(out.message).toMatch(/no package lists/);
        return;
      }
      expect(out).not.toBe(NO_DATA);
      const [p] = out as Payload[];
      expect(p?.case).toBe("updateStatus");
      const s = p!.value as UpdateStatus;
      expect(s.packageManager).toBe("apt");
      expect(s.securityCount).toBeLessThanOrEqual(s.pendingCount);
      expect(s.packages.length).toBe(Math.min(s.pendingCount, 1_000));
      expect(s.packages.filter((x) => x.security).length).toBe(Math.min(s.securityCount, s.packages.length));
      for (const pkg of s.packages) {
        expect(pkg.name).toMatch(/^[a-z0-9][a-z0-9+.:-]*$/);
        expect(pkg.version).toMatch(/^\S+$/);
      }
      expect(typeof s.rebootRequired).toBe("boolean");
      expect(s.rebootRequired).toBe(fs.existsSync("/run/reboot-required") || fs.existsSync("/var/run/reboot-required"));
    } finally {
      await c.close?.();
    }
  });
});
