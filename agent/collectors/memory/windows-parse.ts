import { parsePsList, psNumber } from "../ps-json.js";

/** Page-file totals in bytes. */
export interface PageFileTotals {
  total: number;
  used: number;
}

/**
 * Sums `Win32_PageFileUsage` (sample: testdata/windows/pagefile-usage.json): AllocatedBaseSize and CurrentUsage
 * are MB. No page file gives empty output or `[]`, i.e. zero swap.
 */
export function parsePageFileUsage(text: string): PageFileTotals {
  let total = 0;
  let used = 0;
  for (const o of parsePsList(text, "Win32_PageFileUsage")) {
    total += (psNumber(o["AllocatedBaseSize"]) ?? 0) * 1024 * 1024;
    used += (psNumber(o["CurrentUsage"]) ?? 0) * 1024 * 1024;
  }
  return { total, used: Math.min(used, total) };
}
