/** Default number of processes kept by CPU and, separately, by memory. */
export const DEFAULT_TOP_N = 20;
/** Upper bound for `top_n`: each listed process is one entry of the payload (about 60 bytes on the wire). */
export const MAX_TOP_N = 10_000;

/** Validated options of the processes collector (`collectors.processes.options`). */
export interface ProcessesOptions {
  /** `top_n`: how many processes to keep by CPU and by memory (the union is sent). */
  topN: number;
  /**
   * `all_thread_states` (Linux): also read `task/<tid>/stat` of every multi-threaded process, to fill the
   * whole-host `threads_by_state`. Off by default: it costs one file read per thread of the host every run.
   */
  allThreadStates: boolean;
}

/**
 * Reads and validates the options once, at creation (a bad value stops the collector from starting with a clear
 * message instead of failing every run). Unknown keys are ignored.
 */
export function readProcessesOptions(options: Readonly<Record<string, unknown>>): ProcessesOptions {
  const top = options["top_n"];
  let topN = DEFAULT_TOP_N;
  if (top !== undefined && top !== null) {
    if (typeof top !== "number" || !Number.isInteger(top) || top < 1 || top > MAX_TOP_N) {
      throw new Error(
        `collectors.processes.options.top_n must be an integer from 1 to ${MAX_TOP_N}, got ${JSON.stringify(top)}`,
      );
    }
    topN = top;
  }
  const all = options["all_thread_states"];
  if (all !== undefined && all !== null && typeof all !== "boolean") {
    throw new Error(`collectors.processes.options.all_thread_states must be true or false, got ${JSON.stringify(all)}`);
  }
  return { topN, allThreadStates: all === true };
}
