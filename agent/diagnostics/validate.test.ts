import { describe, expect, it } from "vitest";
import { clampInt, InvalidParamError, parseHost, parseHostPort } from "./validate.js";

describe("parseHost", () => {
  it("accepts IP literals and RFC 1123 names", () => {
    expect(parseHost("127.0.0.1")).toEqual({ host: "127.0.0.1", family: 4 });
    expect(parseHost("::1")).toEqual({ host: "::1", family: 6 });
    expect(parseHost("[::1]")).toEqual({ host: "::1", family: 6 });
    expect(parseHost("fe80::1%eth0")).toEqual({ host: "fe80::1%eth0", family: 6 });
    expect(parseHost("::ffff:192.0.2.1")).toEqual({ host: "::ffff:192.0.2.1", family: 6 });
    expect(parseHost("example.org")).toEqual({ host: "example.org", family: 0 });
    expect(parseHost("example.org.")).toEqual({ host: "example.org.", family: 0 });
    expect(parseHost("xn--bcher-kva.example")).toEqual({ host: "xn--bcher-kva.example", family: 0 });
    expect(parseHost("localhost")).toEqual({ host: "localhost", family: 0 });
    expect(parseHost(`${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(61)}`).family).toBe(0);
  });

  it("rejects injection attempts with a clear message", () => {
    const cases: Array<[string, RegExp]> = [
      ["", /^target is required$/],
      ["127.0.0.1; reboot", /whitespace or control characters/],
      ["127.0.0.1;reboot", /not a host name or IP address/],
      ["$(reboot)", /not a host name or IP address/],
      ["`id`", /not a host name or IP address/],
      ["example.org\nid", /^invalid target "example.org\\nid": whitespace or control characters$/],
      ["example.org\r", /whitespace or control characters/],
      ["example.org\0", /whitespace or control characters/],
      ["-f", /^invalid target "-f": must not start with '-'$/],
      ["--help", /must not start with '-'/],
      ["a b", /whitespace/],
      ["example.org|id", /not a host name/],
      ["example.org&&id", /not a host name/],
      ["example.org>x", /not a host name/],
      ["'example.org'", /not a host name/],
      ["../etc/passwd", /not a host name/],
      ["${IFS}", /not a host name/],
      ["example..org", /not a host name/],
      ["-example.org", /must not start with '-'/],
      ["example-.org", /not a host name/],
      ["[127.0.0.1]", /not a host name/],
      ["[example.org]", /not a host name/],
      ["fe80::1%eth0;id", /not a host name/],
      [`${"a".repeat(64)}.org`, /not a host name/],
      ["a".repeat(300), /too long/],
    ];
    for (const [value, message] of cases) {
      expect(() => parseHost(value), JSON.stringify(value)).toThrow(message);
      expect(() => parseHost(value)).toThrow(InvalidParamError);
    }
  });

  it("names the parameter", () => {
    expect(() => parseHost("$(x)", "host")).toThrow('invalid host "$(x)"');
  });
});

describe("parseHostPort", () => {
  it("splits host:port, with IPv6 in brackets", () => {
    expect(parseHostPort("127.0.0.1:22")).toEqual({ host: "127.0.0.1", family: 4, port: 22 });
    expect(parseHostPort("[::1]:443")).toEqual({ host: "::1", family: 6, port: 443 });
    expect(parseHostPort("example.org:65535")).toEqual({ host: "example.org", family: 0, port: 65535 });
  });

  it("rejects bad ports, missing ports, bare IPv6 and injections", () => {
    expect(() => parseHostPort("127.0.0.1:0")).toThrow("port 0 is out of range 1-65535");
    expect(() => parseHostPort("127.0.0.1:65536")).toThrow("port 65536 is out of range 1-65535");
    expect(() => parseHostPort("127.0.0.1")).toThrow("must be host:port");
    expect(() => parseHostPort("::1:22")).toThrow("must be host:port");
    expect(() => parseHostPort("127.0.0.1:22; id")).toThrow("whitespace or control characters");
    expect(() => parseHostPort("$(id):80")).toThrow('invalid target host "$(id)"');
    expect(() => parseHostPort("-p:80")).toThrow("must not start with '-'");
    expect(() => parseHostPort("[::1]:22\n")).toThrow("whitespace or control characters");
    expect(() => parseHostPort("`id`:22")).toThrow("not a host name");
    expect(() => parseHostPort(":22")).toThrow("target host is required");
  });
});

describe("clampInt", () => {
  const b = { default: 4, min: 1, max: 100 };
  it("uses the default for 0 and caps the rest", () => {
    expect(clampInt(0, b)).toBe(4);
    expect(clampInt(7, b)).toBe(7);
    expect(clampInt(1000, b)).toBe(100);
    expect(clampInt(-3, b)).toBe(1);
    expect(clampInt(Number.NaN, b)).toBe(4);
    expect(clampInt(2.9, b)).toBe(2);
  });
});
