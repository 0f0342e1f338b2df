import { readFile } from "node:fs/promises";
import { create } from "@bufbuild/protobuf";
import { ListMountsResultSchema, MountInfoSchema, type ListMountsResult } from "../../../gen/spectra/v1/diagnostics_pb.js";
import { parseProcMounts, type MountEntry } from "../../collectors/disk/mounts.js";
import type { DiagnosticContext } from "../registry.js";

/**
 * Where the mount table is read, in order. With a non-default procRoot (an agent in a container with the host's
 * /proc at /host/proc) `1/mounts` is the host's init mount namespace; `self/mounts` would be the container's own.
 * Sample: testdata/proc/self/mounts (captured on Debian 12).
 */
export function mountTableCandidates(procRoot: string): string[] {
  const own = [`${procRoot}/self/mounts`, `${procRoot}/mounts`];
  return procRoot === "/proc" ? own : [`${procRoot}/1/mounts`, ...own];
}

/** Converts parsed mount lines into the result message, in table order. */
export function toListMountsResult(entries: readonly MountEntry[]): ListMountsResult {
  return create(ListMountsResultSchema, {
    mounts: entries.map((e) => create(MountInfoSchema, { mountpoint: e.mountpoint, device: e.device, fstype: e.fstype, options: e.options })),
  });
}

/** Lists the mounts of the host (Linux). Throws when no mount table can be read. */
export async function listMountsLinux(ctx: Pick<DiagnosticContext, "host" | "signal">): Promise<ListMountsResult> {
  const errors: string[] = [];
  for (const path of mountTableCandidates(ctx.host.paths.procRoot)) {
    try {
      // procfs files are generated on read and never block; the signal still covers a wedged FUSE-mounted procRoot.
      const text = await readFile(path, { encoding: "utf8", signal: ctx.signal });
      return toListMountsResult(parseProcMounts(text));
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      errors.push(`${path}: ${(err as { code?: string }).code ?? String(err)}`);
    }
  }
  throw new Error(`read mount table: ${errors.join("; ")}`);
}
