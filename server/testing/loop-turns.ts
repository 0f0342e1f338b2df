/**
 * Counts event-loop turns from now on (a setImmediate chain), for tests that check that long work lets other work
 * run between its steps. `stop()` ends the chain.
 */
export function countLoopTurns(): { turns(): number; stop(): void } {
  let turns = 0;
  let running = true;
  const tick = (): void => {
    turns++;
    if (running) setImmediate(tick);
  };
  tick();
  return {
    turns: () => turns,
    stop: () => {
      running = false;
    },
  };
}
