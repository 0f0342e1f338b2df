import { describe, expect, it } from "vitest";
import { AGENT_LAUNCH, agentShebang, launchEnvToStrip, launchFromShebang, shouldCollect, startHeapBound } from "./v8-flags.js";

describe("the launch line", () => {
  it("reads back what it writes", () => {
    const line = agentShebang();
    expect(line.startsWith("#!/usr/bin/env -S ")).toBe(true);
    expect(launchFromShebang(line)).toEqual({ env: AGENT_LAUNCH.env, nodeFlags: AGENT_LAUNCH.nodeFlags });
  });

  it("fits in the 255 bytes Linux reads of a #! line", () => {
    expect(agentShebang().length).toBeLessThanOrEqual(255);
    expect(() => agentShebang({ env: {}, nodeFlags: Array.from({ length: 40 }, (_, i) => `--flag-number-${i}`) })).toThrow(/255/);
  });

  it("gives nothing for a line without env -S or without node", () => {
    expect(launchFromShebang("#!/usr/bin/env node")).toEqual({ env: {}, nodeFlags: [] });
    expect(launchFromShebang("#!/bin/sh")).toEqual({ env: {}, nodeFlags: [] });
    expect(launchFromShebang("#!/usr/bin/env -S deno run")).toEqual({ env: {}, nodeFlags: [] });
    expect(launchFromShebang("import x from 'y';")).toEqual({ env: {}, nodeFlags: [] });
  });

  it("parses env assignments and flags of any env -S line", () => {
    expect(launchFromShebang("#!/usr/bin/env -S A=1 B=x=y node --one --two=2\r")).toEqual({
      env: { A: "1", B: "x=y" },
      nodeFlags: ["--one", "--two=2"],
    });
  });

  it("strips only the launch line's own values from the environment", () => {
    const [k, v] = Object.entries(AGENT_LAUNCH.env)[0]!;
    expect(launchEnvToStrip({ [k]: v, PATH: "/bin" })).toEqual([k]);
    expect(launchEnvToStrip({ [k]: `${v}0` })).toEqual([]);
    expect(launchEnvToStrip({})).toEqual([]);
  });
});

describe("the heap bound", () => {
  it("takes the first check as the baseline and collects past the allowed growth", () => {
    expect(shouldCollect(10, undefined, 1)).toBe(false);
    expect(shouldCollect(11, 10, 1)).toBe(false);
    expect(shouldCollect(11.5, 10, 1)).toBe(true);
  });

  it("forces a full GC only when the old space grew past the bound since the last one", () => {
    let used = 8_000_000;
    let tick: (() => void) | undefined;
    let unrefd = false;
    const gcs: number[] = [];
    const bound = startHeapBound(
      {
        usedHeapBytes: () => used,
        fullGc: () => {
          gcs.push(used);
          used = 8_200_000; // what the GC left
        },
        setInterval: (fn, ms) => {
          expect(ms).toBe(60_000);
          tick = fn;
          return { unref: () => (unrefd = true) };
        },
      },
      { checkEveryMs: 60_000, maxGrowthBytes: 1_000_000 },
    );
    expect(unrefd).toBe(true);
    tick!(); // baseline 8.0 MB
    used = 8_900_000;
    tick!(); // +0.9 MB: no GC
    expect(gcs).toEqual([]);
    used = 9_100_000;
    tick!(); // +1.1 MB: GC, new baseline 8.2 MB
    expect(gcs).toEqual([9_100_000]);
    used = 9_150_000;
    tick!(); // +0.95 MB over the new baseline: no GC
    expect(bound.fullGcs()).toBe(1);
    used = 9_300_000;
    tick!();
    expect(bound.fullGcs()).toBe(2);
  });
});
