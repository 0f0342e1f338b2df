import { parsePsObject, psDateMs, psNumber, psString } from "../ps-json.js";

/** What the Windows system query returns. */
export interface WindowsSystemInfo {
  bootTimeSec: number;
  processes: number;
  /** Distinct interactive users (owners of explorer.exe), "DOMAIN\user". */
  users: string[];
}

/**
 * Parses the answer of the system script (sample: testdata/windows/system.json): LastBootUpTime as ISO 8601 or
 * `/Date(ms)/`, NumberOfProcesses, and Users as an array (or a lone string, or null).
 */
export function parseWindowsSystem(text: string): WindowsSystemInfo {
  const o = parsePsObject(text, "Win32_OperatingSystem");
  const bootMs = psDateMs(o["LastBootUpTime"]);
  if (bootMs === undefined) throw new Error("Win32_OperatingSystem: no LastBootUpTime");
  const raw = o["Users"];
  const list = Array.isArray(raw) ? raw : raw === null || raw === undefined ? [] : [raw];
  const users = [...new Set(list.map(psString).filter((u) => u !== ""))];
  return { bootTimeSec: Math.floor(bootMs / 1000), processes: psNumber(o["NumberOfProcesses"]) ?? 0, users };
}
