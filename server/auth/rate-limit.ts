/**
 * Abuse limits, in memory, per server process: token buckets per caller, and a slowdown for addresses that keep
 * failing authentication. Both transports (Connect and the legacy REST routes) use the same instance.
 *
 * Decisions (see README "Security"):
 * - Every request is charged to exactly one bucket: the agent's (by hostname) when it presents an agent key, the
 *   admin token's when it presents one, the enrolling host's for AgentService.Enroll, and the source address's for
 *   requests without a credential (legacy agents let in by --legacy-allow). An authenticated caller is not charged to
 *   its address: a whole fleet may sit behind one NAT or proxy address, and its identity is known better than that.
 * - A stream counts once, when it is opened: the messages inside it are bounded by the body caps, and the agent
 *   sends one batch per report interval.
 * - Failed authentication (a missing, malformed, unknown, revoked or expired credential, or an unknown enrollment
 *   token) is counted per source address. An address that fails more than `authFailuresPerMinute` times within a
 *   minute is refused (429 / ResourceExhausted, before its credential is even looked at) for `authBlockMs`, doubled at
 *   each further failure up to `authBlockMaxMs`; the count drains at that rate per minute and the penalty starts over
 *   once it is back to zero. Every client sharing the address waits with it.
 * - Memory is bounded: a bucket that has refilled is dropped, and at most `maxKeys` buckets (and as many addresses)
 *   are tracked; beyond that the least recently used are forgotten.
 */
import { RateLimitedError } from "../errors.js";

/** Settings of the abuse limits. */
export interface RateLimitOptions {
  /** Requests per second each agent, admin token or address may make on average; 0 turns the buckets off. */
  ratePerSec: number;
  /** Requests each may make at once (the bucket's size). */
  burst: number;
  /** Failed authentications an address may make per minute before it is slowed; 0 turns the slowdown off. */
  authFailuresPerMinute: number;
  /** The first refusal period after that; doubled at each further failure. */
  authBlockMs: number;
  /** The longest refusal period. */
  authBlockMaxMs: number;
  /** Most buckets and most addresses tracked (least recently used beyond are forgotten). */
  maxKeys: number;
}

export const DEFAULT_RATE_LIMITS: RateLimitOptions = {
  ratePerSec: 50,
  burst: 500,
  authFailuresPerMinute: 30,
  authBlockMs: 2_000,
  authBlockMaxMs: 60_000,
  maxKeys: 100_000,
};

/** Token buckets by key: `take` answers 0 (go) or how many ms until a token is there. */
export class TokenBuckets {
  private readonly map = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    private readonly maxKeys: number,
    private readonly clock: () => number,
  ) {}

  /** Takes one token from `key`'s bucket; returns 0 when there was one, else the wait in ms until there is. */
  take(key: string): number {
    if (this.ratePerSec <= 0) return 0;
    const now = this.clock();
    let b = this.map.get(key);
    if (b) {
      this.map.delete(key); // re-inserted below: the map stays in least-recently-used order
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) * this.ratePerSec) / 1000);
      b.at = now;
    } else {
      b = { tokens: this.burst, at: now };
    }
    this.map.set(key, b);
    this.evict(now, key);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) * 1000) / this.ratePerSec);
  }

  /** Buckets tracked (tests). */
  get size(): number {
    return this.map.size;
  }

  /** Drops the oldest buckets while there are too many or they have refilled (a full bucket is a missing one). */
  private evict(now: number, keep: string): void {
    for (const [k, b] of this.map) {
      if (k === keep) break;
      const full = b.tokens + ((now - b.at) * this.ratePerSec) / 1000 >= this.burst;
      if (!full && this.map.size <= this.maxKeys) break;
      this.map.delete(k);
    }
  }
}

interface FailureState {
  /** Failures still allowed before the address is slowed (drains back up at perMinute per minute). */
  allowance: number;
  at: number;
  blockedUntil: number;
  /** The current refusal period (0: none yet). */
  blockMs: number;
}

/** Failed authentication per address, and the refusal periods that follow too many. */
export class AuthFailures {
  private readonly map = new Map<string, FailureState>();

  constructor(
    private readonly opts: Pick<RateLimitOptions, "authFailuresPerMinute" | "authBlockMs" | "authBlockMaxMs" | "maxKeys">,
    private readonly clock: () => number,
  ) {}

  /** How long `address` is still refused (0: not). */
  blockedFor(address: string): number {
    const s = this.map.get(address);
    if (!s) return 0;
    return Math.max(0, s.blockedUntil - this.clock());
  }

  /** Counts a failure; returns the refusal period it started (0 when the address is not slowed). */
  fail(address: string): number {
    const per = this.opts.authFailuresPerMinute;
    if (per <= 0) return 0;
    const now = this.clock();
    let s = this.map.get(address);
    if (s) {
      this.map.delete(address);
      this.refill(s, now);
    } else {
      s = { allowance: per, at: now, blockedUntil: 0, blockMs: 0 };
    }
    this.map.set(address, s);
    this.evict(now, address);
    s.allowance -= 1;
    if (s.allowance >= 1) return 0;
    s.blockMs = s.blockMs === 0 ? this.opts.authBlockMs : Math.min(s.blockMs * 2, this.opts.authBlockMaxMs);
    s.blockedUntil = now + s.blockMs;
    return s.blockMs;
  }

  /** Addresses tracked (tests). */
  get size(): number {
    return this.map.size;
  }

  private refill(s: FailureState, now: number): void {
    const per = this.opts.authFailuresPerMinute;
    s.allowance = Math.min(per, s.allowance + ((now - s.at) * per) / 60_000);
    s.at = now;
    if (s.allowance >= per && now >= s.blockedUntil) s.blockMs = 0; // a clean minute: the penalty starts over
  }

  private evict(now: number, keep: string): void {
    for (const [k, s] of this.map) {
      if (k === keep) break;
      const per = this.opts.authFailuresPerMinute;
      const clean = now >= s.blockedUntil && s.allowance + ((now - s.at) * per) / 60_000 >= per;
      if (!clean && this.map.size <= this.opts.maxKeys) break;
      this.map.delete(k);
    }
  }
}

/** The abuse limits both transports apply. */
export interface AbuseLimits {
  /** Throws RateLimitedError while `address` (a key from addressKey) is refused for failed authentication. */
  admit(address: string): void;
  /**
   * Counts a failed authentication from `address`; returns the refusal period it started (0 when none), so the caller
   * can log the moment an address is slowed.
   */
  authFailed(address: string): number;
  /** Charges one request to `key` ("agent:web-01", "admin:<token id>", "addr:10.0.0.7", …); RateLimitedError when empty. */
  charge(key: string): void;
  readonly options: RateLimitOptions;
}

/** Creates the limits (in memory, this process only). */
export function createAbuseLimits(opts: Partial<RateLimitOptions> = {}, clock: () => number = Date.now): AbuseLimits {
  const options = { ...DEFAULT_RATE_LIMITS, ...opts };
  const buckets = new TokenBuckets(options.ratePerSec, Math.max(1, options.burst), options.maxKeys, clock);
  const failures = new AuthFailures(options, clock);
  return {
    options,
    admit(address) {
      const ms = failures.blockedFor(address);
      if (ms > 0) throw new RateLimitedError("too many failed authentication attempts from this address; slow down", ms);
    },
    authFailed: (address) => failures.fail(address),
    charge(key) {
      const ms = buckets.take(key.length > 300 ? key.slice(0, 300) : key);
      if (ms > 0) throw new RateLimitedError(`rate limit of ${options.ratePerSec} requests per second exceeded`, ms);
    },
  };
}
