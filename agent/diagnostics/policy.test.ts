import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../common/logger.js";
import { CommandSchema, CommandType, ListMountsResultSchema } from "../../gen/spectra/v1/diagnostics_pb.js";
import { ConfigError, loadConfig } from "../config.js";
import { createHostAccess } from "../host/index.js";
import { policyRefusal } from "./policy.js";
import { runCommand } from "./registry.js";

function configWith(yaml: string) {
  return loadConfig({
    argv: ["--config", "/a.yaml"],
    env: {},
    knownCollectors: ["cpu"],
    cwd: "/",
    defaultHostname: () => "h",
    readFile: () => yaml,
  });
}

describe("diagnostics policy from the config file", () => {
  it("disables diagnostics and limits disk-usage paths", () => {
    const c = configWith("diagnostics:\n  network_diag: false\n  fetch_logs: { enabled: false }\n  disk_usage: { allowed_paths: [/var, /home] }\n");
    expect([...c.diagnostics.disabled].sort()).toEqual(["fetchLogs", "networkDiag"]);
    expect(c.diagnostics.diskUsagePaths).toEqual(["/var", "/home"]);
    const p = c.diagnostics;
    expect(policyRefusal(p, "networkDiag", {} as never, "linux")).toBe(
      "network_diag is disabled in this agent's config (diagnostics.network_diag.enabled)",
    );
    expect(policyRefusal(p, "diskUsage", { path: "/var/log" } as never, "linux")).toBeUndefined();
    expect(policyRefusal(p, "diskUsage", { path: "/var" } as never, "linux")).toBeUndefined();
    expect(policyRefusal(p, "diskUsage", { path: "/var/../etc" } as never, "linux")).toMatch(/^disk_usage of \/etc is outside/);
    expect(policyRefusal(p, "diskUsage", { path: "/variable" } as never, "linux")).toMatch(/outside/);
    expect(policyRefusal(p, "diskUsage", { path: "" } as never, "linux")).toMatch(/^disk_usage of \/ is outside/);
    expect(policyRefusal(p, "listMounts", {} as never, "linux")).toBeUndefined();
  });

  it("limits fetch_logs to the allowed units", () => {
    const c = configWith("diagnostics:\n  fetch_logs: { allowed_units: [nginx.service, ssh.service] }\n");
    expect(c.diagnostics.logUnits).toEqual(["nginx.service", "ssh.service"]);
    expect(policyRefusal(c.diagnostics, "fetchLogs", { unit: "ssh.service" } as never, "linux")).toBeUndefined();
    expect(policyRefusal(c.diagnostics, "fetchLogs", { unit: "" } as never, "linux")).toBe(
      "fetch_logs of all logs is outside this agent's allowed units (nginx.service, ssh.service)",
    );
    expect(policyRefusal(c.diagnostics, "fetchLogs", { unit: "cron.service" } as never, "linux")).toMatch(/unit "cron.service" is outside/);
    expect(() => configWith("diagnostics:\n  fetch_logs: { allowed_units: [-x] }\n")).toThrow(
      /^diagnostics.fetch_logs.allowed_units: "-x" is not a unit name/,
    );
  });

  it("names the setting when it is wrong", () => {
    expect(() => configWith("diagnostics:\n  shell: true\n")).toThrow(ConfigError);
    expect(() => configWith("diagnostics:\n  shell: true\n")).toThrow(/^diagnostics.shell: unknown diagnostic/);
    expect(() => configWith("diagnostics:\n  ping: { enabled: yes please }\n")).toThrow(/^diagnostics.ping: unknown/);
    expect(() => configWith("diagnostics:\n  list_mounts: { enabled: maybe }\n")).toThrow(/^diagnostics.list_mounts.enabled:/);
    expect(() => configWith("diagnostics:\n  disk_usage: { allowed_paths: [var] }\n")).toThrow(
      /^diagnostics.disk_usage.allowed_paths: "var" is not an absolute path/,
    );
    expect(() => configWith("diagnostics:\n  list_mounts: { allowed_paths: [/] }\n")).toThrow(/^diagnostics.list_mounts.allowed_paths: unknown setting/);
  });

  it("answers a refused command with a typed error result and its duration, running nothing", async () => {
    let loaded = false;
    const outcome = await runCommand(
      create(CommandSchema, { id: "c1", type: CommandType.DISK_USAGE, params: { case: "diskUsage", value: { path: "/etc" } } }),
      {
        host: createHostAccess(),
        logger: silentLogger(),
        timeoutMs: 1_000,
        policy: { disabled: new Set(), diskUsagePaths: ["/srv"] },
        registry: {
          fetchLogs: undefined,
          listMounts: undefined,
          networkDiag: undefined,
          diskUsage: async () => {
            loaded = true;
            throw new Error("must not load");
          },
        },
      },
    );
    expect(outcome).toMatchObject({ commandId: "c1", type: CommandType.DISK_USAGE, error: "disk_usage of /etc is outside this agent's allowed paths (/srv)" });
    expect(outcome.durationMs).toBeGreaterThanOrEqual(0);
    expect(loaded).toBe(false);
  });
});

describe("outcome flags", () => {
  it("marks an outcome truncated when the diagnostic says its result was cut", async () => {
    const outcome = await runCommand(create(CommandSchema, { id: "c2", type: CommandType.LIST_MOUNTS, params: { case: "listMounts", value: {} } }), {
      host: createHostAccess(),
      logger: silentLogger(),
      timeoutMs: 1_000,
      registry: {
        fetchLogs: undefined,
        diskUsage: undefined,
        networkDiag: undefined,
        listMounts: async () => ({
          name: "listMounts",
          platforms: ["linux", "windows"],
          async run(_p, ctx) {
            ctx.markTruncated?.();
            return create(ListMountsResultSchema, { mounts: [{ mountpoint: "/" }] });
          },
        }),
      },
    });
    expect(outcome).toMatchObject({ error: "", truncated: true });
    expect(outcome.result.case).toBe("listMounts");
  });
});
