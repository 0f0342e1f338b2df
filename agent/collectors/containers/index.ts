import type { CollectorDefinition } from "../types.js";

/**
 * `containers`: every 60 s, Docker containers (dockerode over the socket, `DOCKER_HOST` or the Windows named pipe)
 * and Proxmox guests (the `pvesh` CLI, Linux) in one `container_list`: state, image, CPU % of one core, CPU
 * limit, memory without page cache and its limit, network totals and rates, restarts, health, disk, uptime.
 * Each source is optional and fails on its own. The implementation (and dockerode, later still) loads only when
 * the collector is created.
 */
const containers: CollectorDefinition = {
  name: "containers",
  defaultIntervalMs: 60_000,
  platforms: ["linux", "windows"],
  async create(ctx) {
    return (await import("./collector.js")).createContainersCollector(ctx);
  },
};

export default containers;
