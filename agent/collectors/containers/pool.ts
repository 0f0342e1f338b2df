/**
 * Runs `fn` over `items` with at most `limit` calls in flight and returns the outcomes in input order. A call
 * that throws yields its error in place (one slow or failing item never hides the others). Items not started
 * once `shouldStart()` returns false yield `undefined` (a time budget ran out).
 */
export async function mapWithLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
  shouldStart: () => boolean = () => true,
): Promise<Array<PromiseSettledResult<R> | undefined>> {
  const out = new Array<PromiseSettledResult<R> | undefined>(items.length).fill(undefined);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      if (!shouldStart()) continue;
      try {
        out[i] = { status: "fulfilled", value: await fn(items[i] as T, i) };
      } catch (reason) {
        out[i] = { status: "rejected", reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}
