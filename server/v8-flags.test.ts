import { describe, expect, it } from "vitest";
import { HEAP_GROWING_ENV, serverV8Flags } from "./v8-flags.js";

describe("server V8 flags", () => {
  it("bound the heap's growth only when asked, and not over the node command line's own flag", () => {
    expect(serverV8Flags({}, [])).toEqual([]);
    expect(serverV8Flags({ [HEAP_GROWING_ENV]: "30" }, [])).toEqual(["--heap-growing-percent=30"]);
    expect(serverV8Flags({ [HEAP_GROWING_ENV]: "30" }, ["--max-old-space-size=4096"])).toEqual(["--heap-growing-percent=30"]);
    expect(serverV8Flags({ [HEAP_GROWING_ENV]: "30" }, ["--heap-growing-percent=0"])).toEqual([]);
    expect(serverV8Flags({ [HEAP_GROWING_ENV]: "30" }, ["--heap_growing_percent=50"])).toEqual([]);
    expect(serverV8Flags({ [HEAP_GROWING_ENV]: "" }, [])).toEqual([]);
    const warnings: string[] = [];
    expect(serverV8Flags({ [HEAP_GROWING_ENV]: "lots" }, [], (m) => warnings.push(m))).toEqual([]);
    expect(serverV8Flags({ [HEAP_GROWING_ENV]: "-5" }, [], (m) => warnings.push(m))).toEqual([]);
    expect(warnings).toHaveLength(2);
  });
});
