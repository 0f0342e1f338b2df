/**
 * Indexes of the processes to list: the `topN` with the highest CPU (ties: more memory, then lower pid) followed
 * by those of the `topN` with the most memory (ties: lower pid) that are not already in. A process in both lists
 * appears once, so the result has between `min(count, topN)` and `2 × topN` entries.
 */
export function selectTop(
  count: number,
  topN: number,
  cpu: ArrayLike<number>,
  mem: ArrayLike<number>,
  pid: ArrayLike<number>,
): number[] {
  const idx = new Array<number>(count);
  for (let i = 0; i < count; i++) idx[i] = i;
  const byCpu = idx
    .slice()
    .sort((a, b) => cpu[b]! - cpu[a]! || mem[b]! - mem[a]! || pid[a]! - pid[b]!)
    .slice(0, topN);
  const byMem = idx.sort((a, b) => mem[b]! - mem[a]! || pid[a]! - pid[b]!).slice(0, topN);
  const seen = new Set(byCpu);
  for (const i of byMem) if (!seen.has(i)) byCpu.push(i);
  return byCpu;
}
