import { describe, expect, it } from "vitest";
import { RateLimitedError } from "../errors.js";
import { addressKey } from "./address-matcher.js";
import { AuthFailures, createAbuseLimits, TokenBuckets } from "./rate-limit.js";

describe("token buckets", () => {
  it("allow the burst, then the rate, per key, and say how long to wait", () => {
    let now = 0;
    const b = new TokenBuckets(10, 5, 100, () => now);
    expect([1, 2, 3, 4, 5].map(() => b.take("a"))).toEqual([0, 0, 0, 0, 0]);
    expect(b.take("a")).toBe(100); // 10/s: the next token in 100 ms
    expect(b.take("b")).toBe(0); // another key is not affected
    now += 250;
    expect(b.take("a")).toBe(0);
    expect(b.take("a")).toBe(0);
    expect(b.take("a")).toBeGreaterThan(0);
  });

  it("forget refilled buckets and keep at most maxKeys", () => {
    let now = 0;
    const b = new TokenBuckets(10, 5, 3, () => now);
    for (const k of ["a", "b", "c", "d", "e"]) b.take(k);
    expect(b.size).toBe(3);
    now += 10_000; // all full again
    b.take("f");
    expect(b.size).toBe(1);
  });

  it("are off at rate 0", () => {
    const b = new TokenBuckets(0, 1, 10, () => 0);
    for (let i = 0; i < 100; i++) expect(b.take("a")).toBe(0);
    expect(b.size).toBe(0);
  });
});

describe("failed authentication", () => {
  it("slows an address after N failures in a minute, doubling up to the cap, and forgives after a clean minute", () => {
    let now = 0;
    const f = new AuthFailures({ authFailuresPerMinute: 5, authBlockMs: 1_000, authBlockMaxMs: 4_000, maxKeys: 100 }, () => now);
    expect([1, 2, 3, 4].map(() => f.fail("10.0.0.1"))).toEqual([0, 0, 0, 0]);
    expect(f.blockedFor("10.0.0.1")).toBe(0);
    expect(f.fail("10.0.0.1")).toBe(1_000); // the fifth: slowed
    expect(f.blockedFor("10.0.0.1")).toBe(1_000);
    expect(f.blockedFor("10.0.0.2")).toBe(0);
    now += 1_000;
    expect(f.blockedFor("10.0.0.1")).toBe(0);
    expect(f.fail("10.0.0.1")).toBe(2_000);
    now += 2_000;
    expect(f.fail("10.0.0.1")).toBe(4_000);
    now += 4_000;
    expect(f.fail("10.0.0.1")).toBe(4_000); // the cap
    now += 5 * 60_000; // long clean period: back to a full allowance, penalty forgotten
    expect([1, 2, 3, 4].map(() => f.fail("10.0.0.1"))).toEqual([0, 0, 0, 0]);
    expect(f.fail("10.0.0.1")).toBe(1_000);
  });

  it("tracks a bounded number of addresses", () => {
    let now = 0;
    const f = new AuthFailures({ authFailuresPerMinute: 5, authBlockMs: 1_000, authBlockMaxMs: 4_000, maxKeys: 10 }, () => now);
    for (let i = 0; i < 1_000; i++) f.fail(`10.0.${i >> 8}.${i & 255}`);
    expect(f.size).toBeLessThanOrEqual(10);
    now += 120_000;
    f.fail("192.0.2.1");
    expect(f.size).toBe(1);
  });
});

describe("abuse limits", () => {
  it("throw RateLimitedError with the wait", () => {
    let now = 0;
    const l = createAbuseLimits({ ratePerSec: 1, burst: 1, authFailuresPerMinute: 1, authBlockMs: 3_000 }, () => now);
    l.charge("agent:a");
    expect(() => l.charge("agent:a")).toThrow(RateLimitedError);
    try {
      l.charge("agent:a");
    } catch (err) {
      expect((err as RateLimitedError).retryAfterSeconds).toBe(1);
    }
    expect(l.authFailed("1.2.3.4")).toBe(3_000);
    expect(() => l.admit("1.2.3.4")).toThrow(/too many failed authentication/);
    now += 3_000;
    expect(() => l.admit("1.2.3.4")).not.toThrow();
  });

  it("key addresses: IPv4-mapped IPv6 as IPv4, IPv6 by its /64", () => {
    expect(addressKey("::ffff:127.0.0.1")).toBe("127.0.0.1");
    expect(addressKey("10.1.2.3")).toBe("10.1.2.3");
    expect(addressKey("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(addressKey("2001:db8:1:2:bbbb::7")).toBe("2001:db8:1:2::/64");
    expect(addressKey("::1")).toBe("0:0:0:0::/64");
    expect(addressKey(undefined)).toBe("unknown");
    expect(addressKey("garbage")).toBe("unknown");
  });
});
