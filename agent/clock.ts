/**
 * The agent's monotonic clock: milliseconds since the process started, like `performance.now()` (same origin, same
 * sub-millisecond resolution, both from libuv's high-resolution clock), without the `performance` global: Node
 * creates that global's object on first use by loading `perf_hooks`, which costs ~0.5 MiB of RSS in a bare node
 * with the agent's launch flags (docs/benchmarks.md, "Agent footprint", 2026-11-28).
 */
export function monotonicMs(): number {
  return process.uptime() * 1000;
}
