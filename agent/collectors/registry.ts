import type { CollectorDefinition } from "./types.js";

/**
 * Every collector, as a lazy import: a collector that is not enabled never loads (nor do its dependencies).
 * Adding a collector is one line here; the key is its one lowercase name (config key, log field, proto field).
 */
export const collectorRegistry = {
  cpu: () => import("./cpu/index.js"),
  memory: () => import("./memory/index.js"),
  disk: () => import("./disk/index.js"),
  disk_io: () => import("./disk-io/index.js"),
  network: () => import("./network/index.js"),
  system: () => import("./system/index.js"),
  processes: () => import("./processes/index.js"),
  services: () => import("./services/index.js"),
  temperature: () => import("./temperature/index.js"),
  wifi: () => import("./wifi/index.js"),
  containers: () => import("./containers/index.js"),
  applications: () => import("./applications/index.js"),
  raspberrypi: () => import("./raspberrypi/index.js"),
  update_status: () => import("./update-status/index.js"),
} as const satisfies Record<string, () => Promise<{ default: CollectorDefinition }>>;

/** The name of a registered collector. */
export type CollectorName = keyof typeof collectorRegistry;

/** All registered names, in registry order. */
export const collectorNames = Object.keys(collectorRegistry) as CollectorName[];

/** Type guard for names coming from config or the command line. */
export function isCollectorName(name: string): name is CollectorName {
  return Object.hasOwn(collectorRegistry, name);
}

/** Loads one collector's definition; throws if its module does not define the same name. */
export async function loadCollector(name: CollectorName): Promise<CollectorDefinition> {
  const mod = await collectorRegistry[name]();
  const def = mod.default;
  if (def.name !== name) throw new Error(`collector module for "${name}" defines "${def.name}"`);
  return def;
}
