import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Logger } from "../../../common/logger.js";
import type { ExecResult, HostAccess } from "../../host/host-access.js";
import { RateTracker } from "../rate.js";
import { NODE_NAME_RE, type ContainersOptions } from "./options.js";
import type { ContainerRow } from "./payload.js";
import { mapWithLimit } from "./pool.js";
import {
  guestRow,
  parseClusterResources,
  parseGuestStatus,
  parseLocalNode,
  VMID_RE,
  type PveGuestStatus,
  type PveResource,
} from "./proxmox-parse.js";
import { describeError, type ContainerSource, type SourceOutcome } from "./source.js";
import { monotonicMs as clockMs } from "../../clock.js";

/** The guest list of a big cluster is a few hundred KB; this is generous and still bounded. */
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;
/** What the command runner uses when the agent has no PATH (keep in step with agent/host/exec.ts). */
const FALLBACK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Test seams for the Proxmox source. */
export interface ProxmoxSourceDeps {
  /** Proxmox's cluster file system mount; default "/etc/pve". */
  pveDir?: string;
  /** Monotonic clock in ms (network rates); default `clockMs`, agent/clock.ts. */
  monotonicMs?: () => number;
  /** Default `os.hostname`. */
  hostname?: () => string;
}

/** Whether an executable `name` is in one of the PATH directories the command runner will search. */
async function onPath(name: string): Promise<boolean> {
  const dirs = (process.env["PATH"] ?? FALLBACK_PATH).split(path.delimiter).filter((d) => d !== "");
  for (const dir of dirs) {
    try {
      await fs.promises.access(path.join(dir, name), fs.constants.X_OK);
      return true;
    } catch {
      // Not here; next directory.
    }
  }
  return false;
}

/**
 * Proxmox VE guests (LXC and VMs) of THIS node through the `pvesh` CLI (docs/data-sources.md 3.10), every call
 * through the agent's command runner (argument array, `pvesh_timeout`, output cap):
 *
 * - present when `pvesh` is on PATH or `/etc/pve` exists (Linux only); otherwise `{present: false}`;
 * - the node name: option `proxmox_node`, else `pvesh get /cluster/status` asked once (the `local` node), else the
 *   short hostname (what PVE itself uses); only that node's guests are reported (pvesh would proxy calls for
 *   other nodes' guests across the cluster; each node's agent reports its own), templates are left out;
 * - `pvesh get /cluster/resources --type vm` gives every guest's status, CPU, memory, disk, network and uptime
 *   (pvestatd's figures, ≤ 10 s old); its failure fails the source;
 * - with `proxmox_guest_status` (default on), `…/{qemu,lxc}/<vmid>/status/current` for each running guest, at
 *   most `concurrency` at once, refines state (paused VMs), memory, disk and uptime; a guest whose call fails or
 *   times out is still reported from the list (logged when that starts and when it stops);
 * - network rates from the list's cumulative counters between runs; a guest whose uptime or counters went back
 *   (it restarted) gets no rate that run.
 *
 * Node and vmid come only from pvesh's own output and are validated before they go into an argument.
 */
export function createProxmoxSource(
  host: HostAccess,
  options: ContainersOptions,
  logger: Logger,
  deps: ProxmoxSourceDeps = {},
): ContainerSource {
  const pveDir = deps.pveDir ?? "/etc/pve";
  const monotonicMs = deps.monotonicMs ?? clockMs;
  const hostname = deps.hostname ?? (() => os.hostname());
  const timeoutMs = options.pveshTimeoutMs;
  const tracker = new RateTracker();
  let node: string | undefined = options.proxmoxNode;
  let guestStatusFailing = false;

  /** Runs `pvesh get <path> … --output-format json` and returns stdout; throws with what failed. */
  const pvesh = async (args: readonly string[], signal: AbortSignal): Promise<string> => {
    const what = `pvesh ${args.join(" ")}`;
    let r: ExecResult;
    try {
      r = await host.exec.run("pvesh", args, { timeoutMs, maxOutputBytes: MAX_OUTPUT_BYTES, signal });
    } catch (cause) {
      throw new Error(`run ${what}`, { cause });
    }
    if (r.timedOut) throw new Error(`${what}: no answer within ${timeoutMs} ms`);
    if (r.truncated) throw new Error(`${what}: output exceeds ${MAX_OUTPUT_BYTES} bytes`);
    if (r.exitCode !== 0) {
      const detail = r.stderr.trim().slice(-300) || `signal ${r.signal ?? "none"}`;
      throw new Error(`${what}: exit ${r.exitCode ?? "null"}: ${detail}`);
    }
    return r.stdout;
  };

  const localNode = async (signal: AbortSignal): Promise<string> => {
    if (node !== undefined) return node;
    const short = hostname().split(".")[0] ?? "";
    let found: string | undefined;
    try {
      found = parseLocalNode(await pvesh(["get", "/cluster/status", "--output-format", "json"], signal));
    } catch (err) {
      if (signal.aborted) throw err;
      logger.info(
        { err: describeError(err), node: short },
        "proxmox: local node unknown from /cluster/status; using the hostname",
      );
    }
    // Asked once: the node name does not change while the agent runs.
    node = found !== undefined && NODE_NAME_RE.test(found) ? found : short;
    return node;
  };

  const guestStatus = async (g: PveResource, signal: AbortSignal): Promise<PveGuestStatus> => {
    // Both come from pvesh's own output; checked anyway before they become an argument.
    if (!NODE_NAME_RE.test(g.node) || !VMID_RE.test(String(g.vmid)))
      throw new Error(`proxmox: unexpected node/vmid ${g.node}/${g.vmid}`);
    const p = `/nodes/${g.node}/${g.type}/${g.vmid}/status/current`;
    return parseGuestStatus(await pvesh(["get", p, "--output-format", "json"], signal));
  };

  return {
    name: "proxmox",
    async collect(signal): Promise<SourceOutcome> {
      if (host.platform !== "linux") return { present: false, reason: "Proxmox VE runs on Linux only" };
      const present = (await onPath("pvesh")) || fs.existsSync(pveDir);
      if (!present) return { present: false, reason: `no pvesh on PATH and no ${pveDir}` };

      const me = await localNode(signal);
      const all = parseClusterResources(
        await pvesh(["get", "/cluster/resources", "--type", "vm", "--output-format", "json"], signal),
      );
      const at = monotonicMs();
      const guests = all.filter((g) => g.node === me && !g.template);

      const live = new Map<string, PveGuestStatus>();
      const failures: unknown[] = [];
      if (options.proxmoxGuestStatus) {
        const running = guests.filter((g) => g.status === "running");
        const outcomes = await mapWithLimit(running, options.concurrency, (g) => guestStatus(g, signal));
        signal.throwIfAborted();
        outcomes.forEach((o, i) => {
          const g = running[i] as PveResource;
          if (o?.status === "fulfilled") live.set(g.id, o.value);
          else if (o?.status === "rejected") failures.push(o.reason);
        });
      }
      if (failures.length > 0 && !guestStatusFailing) {
        logger.warn(
          { failed: failures.length, err: describeError(failures[0]) },
          "proxmox: status/current failed for some guests; they are reported from the guest list",
        );
      } else if (failures.length === 0 && guestStatusFailing) {
        logger.info("proxmox: status/current answers again for every guest");
      }
      guestStatusFailing = failures.length > 0;

      const counters = new Map<string, number[]>();
      for (const g of guests) {
        // Uptime rides along: it goes back when the guest restarts, which makes the helper skip that rate.
        if (g.netin !== undefined && g.netout !== undefined) counters.set(g.id, [g.netin, g.netout, g.uptime ?? 0]);
      }
      const rates = tracker.update(counters, at);
      return {
        present: true,
        rows: guests.map((g): ContainerRow => {
          const row = guestRow(g, live.get(g.id));
          const r = rates?.get(g.id);
          if (r) {
            row.netRxRate = r.perSecond[0];
            row.netTxRate = r.perSecond[1];
          }
          return row;
        }),
      };
    },
  };
}
