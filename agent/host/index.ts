import type { Platform } from "../collectors/types.js";
import { createCommandRunner } from "./exec.js";
import type { CommandRunner, HostAccess, HostPaths } from "./host-access.js";
import { detectPlatform } from "./platform.js";

export type { CommandRunner, ExecOptions, ExecResult, HostAccess, HostPaths } from "./host-access.js";

/** The default host roots: the real /proc and /sys, mount points as they are. */
export const DEFAULT_HOST_PATHS: Readonly<HostPaths> = { procRoot: "/proc", sysRoot: "/sys", rootfs: "" };

/** Test seams for {@link createHostAccess}; production code passes nothing. */
export interface HostAccessOverrides {
  platform?: Platform;
  exec?: CommandRunner;
}

/**
 * Builds the agent's {@link HostAccess}: the detected platform, the given roots over the defaults
 * (`/proc`, `/sys`, `""`; trailing slashes removed) and the real command runner.
 */
export function createHostAccess(paths: Partial<HostPaths> = {}, overrides: HostAccessOverrides = {}): HostAccess {
  const platform = overrides.platform ?? detectPlatform();
  return {
    platform,
    paths: {
      procRoot: trimSlash(paths.procRoot ?? DEFAULT_HOST_PATHS.procRoot),
      sysRoot: trimSlash(paths.sysRoot ?? DEFAULT_HOST_PATHS.sysRoot),
      rootfs: trimSlash(paths.rootfs ?? DEFAULT_HOST_PATHS.rootfs),
    },
    exec: overrides.exec ?? createCommandRunner({ platform }),
  };
}

/** "/host/" → "/host", "/" → "" (so `rootfs + "/mnt"` never doubles the slash). */
function trimSlash(p: string): string {
  return p.replace(/\/+$/, "");
}
