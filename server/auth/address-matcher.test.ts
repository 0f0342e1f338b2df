import { describe, expect, it } from "vitest";
import { NO_ADDRESSES, parseAddressList } from "./address-matcher.js";

describe("--legacy-allow address lists", () => {
  it("matches IPv4, IPv6 and IPv4-mapped IPv6 peers against CIDRs and single addresses", () => {
    const m = parseAddressList("10.0.0.0/8, 192.168.1.7, fd00::/8, ::ffff:172.16.0.0/108");
    expect(m.networks).toEqual(["10.0.0.0/8", "192.168.1.7/32", "fd00::/8", "::ffff:172.16.0.0/108"]);
    const cases: [string, boolean][] = [
      ["10.1.2.3", true],
      ["::ffff:10.1.2.3", true], // what a dual-stack socket reports for an IPv4 client
      ["::ffff:a01:203", true],
      ["0:0:0:0:0:ffff:10.1.2.3", true],
      ["11.1.2.3", false],
      ["::ffff:11.1.2.3", false],
      ["192.168.1.7", true],
      ["192.168.1.8", false],
      ["fd12::1", true],
      ["fe80::1", false],
      ["172.16.5.5", true],
      ["172.32.5.5", false],
      ["::1", false],
      ["127.0.0.1", false],
      ["garbage", false],
      ["", false],
    ];
    expect(cases.map(([a]) => [a, m.matches(a)])).toEqual(cases);
    expect(m.matches(undefined)).toBe(false);
    expect(parseAddressList("::1, 127.0.0.0/8").matches("::ffff:127.0.0.1")).toBe(true);
    expect(parseAddressList("0.0.0.0/0").matches("::ffff:8.8.8.8")).toBe(true);
    expect(NO_ADDRESSES.matches("127.0.0.1")).toBe(false);
  });

  it("refuses malformed entries, naming them", () => {
    expect(() => parseAddressList("10.0.0.0/33")).toThrow(/"10.0.0.0\/33": the prefix length must be 0 to 32/);
    expect(() => parseAddressList("fd00::/129")).toThrow(/0 to 128/);
    expect(() => parseAddressList("10.0.0.0/8,example.com")).toThrow(/"example.com" is not an IP address or CIDR/);
    expect(() => parseAddressList("10.0.0.0/x")).toThrow(/prefix length/);
    expect(parseAddressList(" , ").networks).toEqual([]);
  });
});
