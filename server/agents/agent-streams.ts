/**
 * Open agent streams (CommandPoll, StreamMetrics) per host, so that a change of the host's access record — a key
 * revoked or rotated here or on another server sharing the database — reaches them at once.
 */
export interface AgentStreams {
  /** Registers a listener for changes to `hostname`'s access record; returns the function that removes it. */
  add(hostname: string, onChange: () => void): () => void;
  /** The access record of `hostname` (null: of every host) may have changed: every listener looks again. */
  changed(hostname: string | null): void;
  /** Open streams of a host (tests, diagnostics). */
  count(hostname: string): number;
  /**
   * Calls `cb` with every hostname passed to changed() (caches of access data, e.g. certificate pins); not counted
   * as a stream. Returns the function that removes it.
   */
  observe(cb: (hostname: string | null) => void): () => void;
}

/** Creates an empty registry of agent streams. */
export function createAgentStreams(): AgentStreams {
  const byHost = new Map<string, Set<() => void>>();
  const observers = new Set<(hostname: string | null) => void>();
  const call = (set: Set<() => void> | undefined) => {
    for (const fn of [...(set ?? [])]) fn();
  };
  return {
    add(hostname, onChange) {
      let set = byHost.get(hostname);
      if (!set) byHost.set(hostname, (set = new Set()));
      set.add(onChange);
      return () => {
        set.delete(onChange);
        if (set.size === 0 && byHost.get(hostname) === set) byHost.delete(hostname);
      };
    },
    changed(hostname) {
      for (const cb of [...observers]) cb(hostname);
      if (hostname === null) for (const set of [...byHost.values()]) call(set);
      else call(byHost.get(hostname));
    },
    count(hostname) {
      return byHost.get(hostname)?.size ?? 0;
    },
    observe(cb) {
      observers.add(cb);
      return () => observers.delete(cb);
    },
  };
}
