import fs from "node:fs";
import os from "node:os";
import { ProcFile } from "../../host/proc-file.js";
import type { Collector, CollectorContext } from "../types.js";
import { countProcessEntries, countUtmpUsers, parseBtime, parseUptime } from "./parse.js";
import { systemPayload } from "./payload.js";

/**
 * System: uptime from `<procRoot>/uptime`, boot time from `btime` in `<procRoot>/stat`, process count from the
 * numeric entries of `<procRoot>`, logged-in sessions from the binary utmp file (USER_PROCESS records; no `who`
 * child). utmp is `<rootfs>/var/run/utmp` (with a rootfs, `<rootfs>/run/utmp` first, since /var/run is an absolute
 * symlink to /run); option `utmpPath` overrides it. A missing utmp (musl, distros that dropped it) means 0 users.
 */
export function createLinuxSystemCollector(ctx: CollectorContext): Collector {
  const { procRoot, rootfs } = ctx.host.paths;
  const uptimeFile = new ProcFile(`${procRoot}/uptime`, 128);
  const statFile = new ProcFile(`${procRoot}/stat`, 8192);
  const opt = ctx.options["utmpPath"];
  const utmpPaths =
    typeof opt === "string" && opt !== ""
      ? [opt]
      : rootfs === ""
        ? ["/var/run/utmp"]
        : [`${rootfs}/run/utmp`, `${rootfs}/var/run/utmp`];
  const littleEndian = os.endianness() === "LE";
  let utmpMissingLogged = false;

  const countUsers = (): number => {
    for (const p of utmpPaths) {
      let buf: Buffer;
      try {
        // utmp lives on tmpfs (/run) and is a few KB: a synchronous read is cheaper than the async round trips.
        buf = fs.readFileSync(p);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
        throw new Error(`read ${p}`, { cause: err });
      }
      utmpMissingLogged = false;
      return countUtmpUsers(buf, littleEndian);
    }
    if (!utmpMissingLogged) {
      utmpMissingLogged = true;
      ctx.logger.debug({ paths: utmpPaths }, "no utmp file; reporting 0 logged-in users");
    }
    return 0;
  };

  return {
    async collect() {
      const uptime = parseUptime(uptimeFile.read());
      const btime = parseBtime(statFile.read());
      if (btime === undefined) throw new Error(`no btime in ${statFile.path}`);
      let entries: string[];
      try {
        // Synchronous: listing procfs is in-memory work (~50 µs for 100 processes here) and the asynchronous
        // readdir measured twice as slow; it runs once every 5 minutes.
        entries = fs.readdirSync(procRoot);
      } catch (cause) {
        throw new Error(`list ${procRoot}`, { cause });
      }
      return [systemPayload(uptime, btime, countProcessEntries(entries), countUsers())];
    },
    close() {
      uptimeFile.close();
      statFile.close();
    },
  };
}
