import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../../common/logger.js";
import type { MemoryMetrics } from "../../../gen/spectra/v1/metrics_pb.js";
import { createHostAccess, type HostPaths } from "../../host/index.js";
import type { PowerShellQuery } from "../../host/powershell.js";
import type { CollectorContext, Payload } from "../types.js";
import memory from "./index.js";
import { createWindowsMemoryCollector, PAGEFILE_SCRIPT } from "./windows.js";

const testdata = path.join(import.meta.dirname, "testdata");
const ctxFor = (paths: Partial<HostPaths>, platform: "linux" | "windows" = "linux"): CollectorContext => ({
  host: createHostAccess(paths, { platform }),
  logger: silentLogger(),
  options: {},
});
const signal = new AbortController().signal;
const memOf = (p: Payload[] | symbol): MemoryMetrics => {
  const first = (p as Payload[])[0]!;
  expect(first.case).toBe("memory");
  return first.value as MemoryMetrics;
};

describe("linux memory collector", () => {
  it("reports the fixture tree's meminfo", async () => {
    const c = await memory.create(ctxFor({ procRoot: path.join(testdata, "proc") }));
    const m = memOf(await c.collect(signal));
    expect(m.ramTotal).toBe(24684084n * 1024n);
    expect(m.ramAvailable).toBe(24134044n * 1024n);
    expect(m.ramUsed).toBe((24684084n - 24134044n) * 1024n);
    expect(m.ramUsedPct).toBe(2.23); // 2.228…, sent with two decimals
    expect(m.swapTotal).toBe(0n);
    await c.close?.();
  });

  it("reports sane values for this machine", async () => {
    const c = await memory.create(ctxFor({}));
    const m = memOf(await c.collect(signal));
    // /proc/meminfo's MemTotal is the same memory os.totalmem() reports.
    expect(Number(m.ramTotal)).toBe(os.totalmem());
    expect(m.ramUsed + m.ramAvailable).toBe(m.ramTotal);
    expect(m.ramUsedPct).toBeGreaterThan(0);
    expect(m.ramUsedPct).toBeLessThan(100);
    await c.close?.();
  });
});

describe("windows memory collector", () => {
  it("combines os.totalmem/freemem with the page-file query", async () => {
    const scripts: string[] = [];
    const ps: PowerShellQuery = {
      query: async (script) => {
        scripts.push(script);
        return fs.readFileSync(path.join(testdata, "windows/pagefile-usage.json"), "utf8");
      },
    };
    const c = createWindowsMemoryCollector(ctxFor({}, "windows"), {
      ps,
      totalmem: () => 16 * 1024 ** 3,
      freemem: () => 4 * 1024 ** 3,
    });
    const m = memOf(await c.collect(signal));
    expect(scripts).toEqual([PAGEFILE_SCRIPT]);
    expect(m.ramUsed).toBe(12n * 1024n ** 3n);
    expect(m.ramUsedPct).toBe(75);
    expect(m.swapTotal).toBe(6912n * 1024n * 1024n);
    expect(m.swapUsed).toBe(412n * 1024n * 1024n);
    expect(m.swapPct).toBe(5.96); // 412 / 6912 = 5.9606…%, sent with two decimals
  });

  it("fails the run when PowerShell answers an error", async () => {
    const ps: PowerShellQuery = { query: async () => '{"error":"Access denied"}' };
    const c = createWindowsMemoryCollector(ctxFor({}, "windows"), { ps });
    await expect(c.collect(signal)).rejects.toThrow(/Access denied/);
  });
});
