import type { Platform } from "../collectors/types.js";

/**
 * Maps a Node platform name to the agent's {@link Platform}; throws for operating systems the agent does not
 * support, so a mis-deployed agent fails at start-up instead of collecting garbage.
 */
export function platformFromNodeName(name: string): Platform {
  if (name === "linux") return "linux";
  if (name === "win32") return "windows";
  throw new Error(`unsupported platform: ${name} (the agent runs on linux and windows)`);
}

/**
 * The platform this process runs on. This is the ONLY place in the agent that reads `process.platform`; everything
 * else receives the value (through `HostAccess.platform`) so Windows code paths can run in Linux tests.
 */
export function detectPlatform(): Platform {
  return platformFromNodeName(process.platform);
}
