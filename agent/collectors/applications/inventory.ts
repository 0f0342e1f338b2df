import { changeDirection } from "./version-compare.js";

/** One installed application, as the parsers return it (the proto's `ApplicationInfo`). */
export interface App {
  name: string;
  version: string;
  /** "dpkg", "rpm", "apk", "pacman", "snap", "flatpak" or "registry". */
  source: string;
  vendor?: string;
  arch?: string;
}

/** What one inventory run found. */
export interface Inventory {
  /** Every application of every source that answered. */
  apps: App[];
  /** Sources that exist on this host but failed this time (their applications are not in `apps`). */
  failed: ReadonlySet<string>;
}

/** One application whose version changed under the same name, source and architecture. */
export interface VersionChange {
  name: string;
  source: string;
  arch?: string;
  fromVersion: string;
  toVersion: string;
  /** From {@link changeDirection}: for logs only, the contract has no field for it. */
  direction: "upgrade" | "downgrade" | "changed";
}

/** The difference between two inventories, each list sorted by name. */
export interface InventoryChanges {
  added: App[];
  removed: App[];
  upgraded: VersionChange[];
}

/** What to send: the full inventory (sorted) and its changes since the previous one sent. */
export interface InventoryReport {
  apps: App[];
  changes: InventoryChanges;
  /** Why it is sent: the first inventory after start, a change, or the periodic full resend. */
  reason: "first" | "changed" | "resend";
}

/** Code-point order (not locale order: the output must not depend on the host's ICU data). */
function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Orders applications by name, then source, architecture, version and vendor: a stable, total order. */
export function compareApps(a: App, b: App): number {
  return (
    cmp(a.name, b.name) ||
    cmp(a.source, b.source) ||
    cmp(a.arch ?? "", b.arch ?? "") ||
    cmp(a.version, b.version) ||
    cmp(a.vendor ?? "", b.vendor ?? "")
  );
}

/** The identity of an application across inventories: the same name, source and architecture. */
function identity(a: App): string {
  return `${a.source}\u0000${a.name}\u0000${a.arch ?? ""}`;
}

function groupByIdentity(apps: readonly App[], skipSources: ReadonlySet<string>): Map<string, App[]> {
  const out = new Map<string, App[]>();
  for (const a of apps) {
    if (skipSources.has(a.source)) continue;
    const k = identity(a);
    const list = out.get(k);
    if (list) list.push(a);
    else out.set(k, [a]);
  }
  return out;
}

/**
 * The changes from `before` to `after`. Applications are matched by name + source + architecture; a match whose
 * version string differs is "upgraded" (in either direction), the rest are added or removed. One identity can
 * hold several entries (a flatpak installed system-wide and per user, a Windows program in the machine and a
 * user hive): equal versions cancel out first, the remaining ones pair up in version order as changes, and
 * what is left over is added or removed. Sources in `skipSources` are left out on both sides.
 */
export function diffInventories(
  before: readonly App[],
  after: readonly App[],
  skipSources: ReadonlySet<string> = new Set(),
): InventoryChanges {
  const old = groupByIdentity(before, skipSources);
  const now = groupByIdentity(after, skipSources);
  const changes: InventoryChanges = { added: [], removed: [], upgraded: [] };
  for (const key of new Set([...old.keys(), ...now.keys()])) {
    const was = [...(old.get(key) ?? [])];
    const is: App[] = [];
    for (const a of now.get(key) ?? []) {
      const same = was.findIndex((w) => w.version === a.version);
      if (same >= 0) was.splice(same, 1);
      else is.push(a);
    }
    was.sort(compareApps);
    is.sort(compareApps);
    const paired = Math.min(was.length, is.length);
    for (let i = 0; i < paired; i++) {
      const from = was[i]!;
      const to = is[i]!;
      changes.upgraded.push({
        name: to.name,
        source: to.source,
        ...(to.arch !== undefined ? { arch: to.arch } : {}),
        fromVersion: from.version,
        toVersion: to.version,
        direction: changeDirection(from.version, to.version),
      });
    }
    changes.removed.push(...was.slice(paired));
    changes.added.push(...is.slice(paired));
  }
  changes.added.sort(compareApps);
  changes.removed.sort(compareApps);
  changes.upgraded.sort(
    (a, b) =>
      cmp(a.name, b.name) || cmp(a.source, b.source) || cmp(a.arch ?? "", b.arch ?? "") || cmp(a.fromVersion, b.fromVersion),
  );
  return changes;
}

/** A canonical text of a sorted inventory: equal texts mean nothing changed (vendor included). */
function fingerprint(sorted: readonly App[]): string {
  return JSON.stringify(sorted.map((a) => [a.name, a.source, a.arch ?? null, a.version, a.vendor ?? null]));
}

interface Sent {
  apps: App[];
  fingerprint: string;
  atMs: number;
  /**
   * Sources that had failed with nothing to carry over when this inventory was built: their entries (when they
   * answer again) are not reported as added, since the agent never knew what was there before.
   */
  unknown: Set<string>;
}

/**
 * Decides what to send after each inventory, keeping the last inventory sent (in memory: after an agent restart
 * the first inventory is sent in full again, with empty change lists).
 *
 * - The first inventory is always sent, with empty change lists.
 * - Later ones are sent only when the inventory differs from the last one sent, with added/removed/upgraded
 *   since then; or, unchanged, once `resendAfterMs` has passed since the last one sent.
 * - A source that failed this time keeps its entries from the last inventory sent (so a snapd that is down is
 *   not reported as "every snap removed"); one that failed before anything was known about it is listed as it
 *   comes back but not reported as added.
 */
export class ChangeTracker {
  private sent: Sent | undefined;

  constructor(private readonly resendAfterMs: number) {}

  /** The report to send for `inventory` taken at `nowMs`, or undefined when nothing is due. */
  next(inventory: Inventory, nowMs: number): InventoryReport | undefined {
    const prev = this.sent;
    let apps = inventory.apps;
    const unknown = new Set<string>();
    for (const source of inventory.failed) {
      if (prev && !prev.unknown.has(source)) apps = apps.concat(prev.apps.filter((a) => a.source === source));
      else unknown.add(source);
    }
    apps = [...apps].sort(compareApps);
    const print = fingerprint(apps);

    if (!prev) {
      this.sent = { apps, fingerprint: print, atMs: nowMs, unknown };
      return { apps, changes: { added: [], removed: [], upgraded: [] }, reason: "first" };
    }
    const changed = print !== prev.fingerprint;
    if (!changed && nowMs - prev.atMs < this.resendAfterMs) {
      // Same inventory as the one sent, so what is known about each source is now the current state.
      prev.unknown = unknown;
      return undefined;
    }
    const changes = diffInventories(prev.apps, apps, prev.unknown);
    this.sent = { apps, fingerprint: print, atMs: nowMs, unknown };
    return { apps, changes, reason: changed ? "changed" : "resend" };
  }
}
