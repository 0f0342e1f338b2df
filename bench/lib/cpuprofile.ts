/**
 * Summarises a V8 .cpuprofile (node --cpu-prof): self time per function and per source file, and inclusive time
 * of selected functions, as shares of all samples (idle included, and shown apart).
 */
import { readFileSync } from "node:fs";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  gcMs: number;
  /** Self time by function (name file:line), busiest first. */
  functions: Array<{ name: string; ms: number; share: number }>;
  /** Self time by file, busiest first. */
  files: Array<{ name: string; ms: number; share: number }>;
  /** Inclusive time of functions whose name matches, summed over call sites (no double counting of recursion). */
  inclusive: Array<{ name: string; ms: number; share: number; longestMs: number }>;
}

function shortUrl(url: string): string {
  if (!url) return "(native)";
  const i = url.indexOf("/dist/");
  if (i >= 0) return url.slice(i + 1);
  const j = url.indexOf("/node_modules/");
  if (j >= 0) return url.slice(j + 1);
  return url.replace(/^file:\/\//, "");
}

/** A function to report inclusive time for: its name and a part of its file's URL. */
export interface FunctionMatcher {
  label: string;
  fn: string;
  file: string;
}

export function summarizeProfile(file: string, inclusiveOf: FunctionMatcher[] = [], top = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map<number, Node>();
  for (const n of p.nodes) byId.set(n.id, n);
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    total += dt;
    selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + dt);
  }
  let idle = 0;
  let gc = 0;
  const fn = new Map<string, number>();
  const files = new Map<string, number>();
  const incl = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    const cf = n.callFrame;
    if (cf.functionName === "(idle)") {
      idle += us;
      continue;
    }
    if (cf.functionName === "(garbage collector)") gc += us;
    const key = `${cf.functionName || "(anonymous)"} ${shortUrl(cf.url)}${cf.url ? `:${cf.lineNumber + 1}` : ""}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    const f = cf.url ? shortUrl(cf.url) : cf.functionName;
    files.set(f, (files.get(f) ?? 0) + us);
    // inclusive: walk up once, count each matching name once per sample stack
    if (inclusiveOf.length > 0) {
      const seen = new Set<string>();
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const c = byId.get(cur)!.callFrame;
        for (const m of inclusiveOf) {
          if (c.functionName === m.fn && c.url.includes(m.file) && !seen.has(m.label)) {
            seen.add(m.label);
            incl.set(m.label, (incl.get(m.label) ?? 0) + us);
          }
        }
      }
    }
  }
  // longest stretch of consecutive samples with the function on the stack (how long it held the thread at once;
  // GC and "(program)" samples inside a stretch count to it)
  const longest = new Map<string, number>();
  if (inclusiveOf.length > 0) {
    const onStack = new Map<number, Set<string>>();
    const labelsOf = (id: number): Set<string> => {
      let l = onStack.get(id);
      if (l) return l;
      l = new Set();
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const c = byId.get(cur)!.callFrame;
        for (const m of inclusiveOf) if (c.functionName === m.fn && c.url.includes(m.file)) l.add(m.label);
      }
      onStack.set(id, l);
      return l;
    };
    const cur = new Map<string, number>();
    for (let i = 0; i < p.samples.length; i++) {
      const dt = p.timeDeltas[i] ?? 0;
      const fn = byId.get(p.samples[i]!)!.callFrame.functionName;
      // a collection or the VM's own work in the middle of a function's stretch does not end the stretch
      if (fn === "(garbage collector)" || fn === "(program)") {
        for (const [k, v] of cur) if (v > 0) cur.set(k, v + dt);
        continue;
      }
      const here = labelsOf(p.samples[i]!);
      for (const m of inclusiveOf) {
        const v = here.has(m.label) ? (cur.get(m.label) ?? 0) + dt : 0;
        cur.set(m.label, v);
        if (v > (longest.get(m.label) ?? 0)) longest.set(m.label, v);
      }
    }
  }
  const busy = total - idle;
  const rank = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => ({ name, ms: us / 1000, share: us / busy }));
  return {
    totalMs: total / 1000,
    idleMs: idle / 1000,
    gcMs: gc / 1000,
    functions: rank(fn, top),
    files: rank(files, top),
    inclusive: inclusiveOf
      .filter((m) => incl.has(m.label))
      .map((m) => ({ name: m.label, ms: incl.get(m.label)! / 1000, share: incl.get(m.label)! / busy, longestMs: (longest.get(m.label) ?? 0) / 1000 })),
  };
}
