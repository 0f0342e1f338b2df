import { ProcFile } from "../../host/proc-file.js";
import type { Collector, CollectorContext } from "../types.js";
import { memoryResult, parseMeminfo } from "./parse.js";
import { memoryPayload } from "./payload.js";

/** Memory from one synchronous read of `<procRoot>/meminfo`. */
export function createLinuxMemoryCollector(ctx: CollectorContext): Collector {
  const meminfo = new ProcFile(`${ctx.host.paths.procRoot}/meminfo`, 8192);
  return {
    async collect() {
      const m = parseMeminfo(meminfo.read());
      return [memoryPayload(memoryResult(m.total, m.available, m.swapTotal, m.swapFree))];
    },
    close() {
      meminfo.close();
    },
  };
}
