import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../../common/logger.js";
import type { ApplicationList } from "../../../gen/spectra/v1/metrics_pb.js";
import type { CommandRunner } from "../../host/host-access.js";
import { createHostAccess } from "../../host/index.js";
import { NO_DATA, type Payload } from "../types.js";
import applications from "./index.js";

/**
 * The real collector on the machine running the tests (Debian in CI): the real command runner and the real
 * dpkg-query, whose database read takes milliseconds. A second run right after must not run anything.
 */
const hasDpkg = fs.existsSync("/usr/bin/dpkg-query") && fs.existsSync("/var/lib/dpkg/status");

describe("applications on this host", () => {
  it.runIf(hasDpkg && process.platform === "linux")("lists hundreds of dpkg packages, then stays quiet until the night", async () => {
    const host = createHostAccess();
    const files: string[] = [];
    const exec: CommandRunner = {
      run: (file, args, opts) => {
        files.push(file);
        return host.exec.run(file, args, opts);
      },
    };
    const c = await applications.create({ host: { ...host, exec }, logger: silentLogger(), options: {} });
    try {
      const started = performance.now();
      const out = await c.collect(AbortSignal.timeout(25_000));
      expect(performance.now() - started).toBeLessThan(25_000);
      expect(out).not.toBe(NO_DATA);
      const [p] = out as Payload[];
      expect(p?.case).toBe("applicationList");
      const l = p!.value as ApplicationList;
      const dpkg = l.applications.filter((a) => a.source === "dpkg");
      expect(dpkg.length).toBeGreaterThan(100);
      expect(l.added).toEqual([]);
      expect(l.upgraded).toEqual([]);
      // The package database itself is installed, with an architecture and a maintainer.
      const self = dpkg.find((a) => a.name === "dpkg");
      expect(self?.version).toMatch(/^1\.\d+/);
      expect(self?.arch).toMatch(/^[a-z0-9]+$/);
      expect(self?.vendor).toBeTruthy();
      expect(self?.vendor).not.toContain("@");
      for (const a of dpkg) {
        expect(a.name).toMatch(/^[a-z0-9][a-z0-9+.-]*$/);
        expect(a.version).toMatch(/^\S+$/);
      }
      const names = l.applications.map((a) => a.name);
      expect(names).toEqual([...names].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)));
      expect(files).toContain("dpkg-query");

      const before = files.length;
      expect(await c.collect(AbortSignal.timeout(25_000))).toEqual([]);
      expect(files).toHaveLength(before);
    } finally {
      await c.close?.();
    }
  });
});
