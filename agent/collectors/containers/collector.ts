import { NO_DATA, type Collector, type CollectorContext } from "../types.js";
import { createDockerSource, type DockerSourceDeps } from "./docker.js";
import { readContainersOptions } from "./options.js";
import { containerListPayload, type ContainerRow } from "./payload.js";
import { createProxmoxSource, type ProxmoxSourceDeps } from "./proxmox.js";
import { describeError, type ContainerSource, type SourceOutcome } from "./source.js";

/** Test seams for the containers collector. */
export interface ContainersDeps {
  docker?: DockerSourceDeps;
  proxmox?: ProxmoxSourceDeps;
}

/** How a source did last run, for logging transitions only (not every tick). */
type SourceState = "unknown" | "ok" | "absent" | "failing";

/**
 * Docker containers and Proxmox guests in one `container_list` (see `docker.ts` and `proxmox.ts`). Options are
 * read once here (a bad value stops the collector at start-up). Both sources run in parallel, and each fails on
 * its own:
 *
 * - a source that is not on this host is left out quietly (logged once, at info, when that becomes so);
 * - one failing source while the other works: the payload carries what worked, the failure is logged (warn) when
 *   it starts and (info) when it recovers;
 * - every present source failing: the run throws with each source's message (the scheduler reports it);
 * - no source on this host at all: NO_DATA.
 */
export function createContainersCollector(ctx: CollectorContext, deps: ContainersDeps = {}): Collector {
  const options = readContainersOptions(ctx.options);
  const sources: ContainerSource[] = [];
  if (options.docker) {
    sources.push(createDockerSource(ctx.host.platform, options, ctx.logger.child({ source: "docker" }), deps.docker));
  }
  if (options.proxmox) {
    sources.push(createProxmoxSource(ctx.host, options, ctx.logger.child({ source: "proxmox" }), deps.proxmox));
  }
  const states = new Map<string, SourceState>(sources.map((s) => [s.name, "unknown"]));

  return {
    async collect(signal) {
      const settled = await Promise.allSettled(sources.map((s) => s.collect(signal)));
      signal.throwIfAborted();
      const rows: ContainerRow[] = [];
      const failures: Array<{ source: string; err: unknown }> = [];
      let worked = 0;
      settled.forEach((r, i) => {
        const source = (sources[i] as ContainerSource).name;
        if (r.status === "rejected") {
          failures.push({ source, err: r.reason });
          return;
        }
        const out: SourceOutcome = r.value;
        if (out.present) {
          worked++;
          rows.push(...out.rows);
          if (states.get(source) === "failing") ctx.logger.info({ source }, `${source}: collecting again`);
          states.set(source, "ok");
        } else {
          if (states.get(source) !== "absent") {
            ctx.logger.info({ source, reason: out.reason }, `${source}: not on this host; not collected`);
          }
          states.set(source, "absent");
        }
      });

      if (failures.length > 0 && worked === 0) {
        // Nothing worked: the run fails; the scheduler logs it (so we do not).
        for (const f of failures) states.set(f.source, "failing");
        const message = failures.map((f) => `${f.source}: ${describeError(f.err)}`).join("; ");
        const errors = failures.map((f) => f.err);
        throw new Error(`containers: ${message}`, {
          cause: errors.length === 1 ? errors[0] : new AggregateError(errors, message),
        });
      }
      for (const f of failures) {
        if (states.get(f.source) !== "failing") {
          const err = describeError(f.err);
          ctx.logger.warn({ source: f.source, err }, `${f.source}: failing; the other source is still reported`);
        }
        states.set(f.source, "failing");
      }
      if (worked === 0) return NO_DATA;
      return [containerListPayload(rows)];
    },
  };
}
