import { describe, expect, it } from "vitest";
import { canonicalLabels, compileMatchers, parseLabels } from "./series.js";

describe("canonical labels", () => {
  it("sorts by name and round-trips values with quotes, backslashes and commas", () => {
    const text = canonicalLabels([
      ["mountpoint", '/mnt/a "b"\\c,d'],
      ["device", "/dev/sda1"],
    ]);
    expect(text).toBe('device="/dev/sda1",mountpoint="/mnt/a \\"b\\"\\\\c,d"');
    expect(parseLabels(text)).toEqual([
      ["device", "/dev/sda1"],
      ["mountpoint", '/mnt/a "b"\\c,d'],
    ]);
  });
  it("is empty for no labels and parses empty", () => {
    expect(canonicalLabels([])).toBe("");
    expect(parseLabels("")).toEqual([]);
  });
  it("rejects malformed text", () => {
    expect(() => parseLabels('a="x')).toThrow(/malformed/);
    expect(() => parseLabels('a="x"b="y"')).toThrow(/malformed/);
    expect(() => parseLabels("a")).toThrow(/malformed/);
  });
});

describe("matchers", () => {
  const labels = [
    ["interface", "eth0"],
    ["core", "3"],
  ] as const;
  it("supports = != =~ !~ and treats missing labels as empty", () => {
    expect(compileMatchers([{ name: "interface", op: "=", value: "eth0" }])(labels)).toBe(true);
    expect(compileMatchers([{ name: "interface", op: "!=", value: "eth0" }])(labels)).toBe(false);
    expect(compileMatchers([{ name: "interface", op: "=~", value: "eth.*" }])(labels)).toBe(true);
    expect(compileMatchers([{ name: "interface", op: "=~", value: "eth" }])(labels)).toBe(false);
    expect(compileMatchers([{ name: "core", op: "!~", value: "[0-2]" }])(labels)).toBe(true);
    expect(compileMatchers([{ name: "mountpoint", op: "=", value: "" }])(labels)).toBe(true);
  });
  it("reports a bad regular expression", () => {
    expect(() => compileMatchers([{ name: "a", op: "=~", value: "(" }])).toThrow(/label matcher a=~/);
  });
});
