import { create } from "@bufbuild/protobuf";
import type { Logger } from "../../common/logger.js";
import {
  CommandOutcomeSchema,
  CommandType,
  DiskUsageParamsSchema,
  FetchLogsParamsSchema,
  ListMountsParamsSchema,
  NetworkDiagParamsSchema,
  type Command,
  type CommandOutcome,
} from "../../gen/spectra/v1/diagnostics_pb.js";
import type { Platform } from "../collectors/types.js";
import type { HostAccess } from "../host/host-access.js";
import { formatDelay } from "../transport/backoff.js";
import { ALLOW_ALL, policyRefusal, type DiagnosticPolicy } from "./policy.js";
import { monotonicMs } from "../clock.js";

/** A diagnostic's key: the case of the `Command.params` oneof (also the case of `CommandOutcome.result`). */
export type DiagnosticName = NonNullable<Command["params"]["case"]>;

/** The params message of a diagnostic. */
export type DiagnosticParams<K extends DiagnosticName> = Extract<Command["params"], { case: K }>["value"];

/** The result message of a diagnostic. */
export type DiagnosticResult<K extends DiagnosticName> = Extract<CommandOutcome["result"], { case: K }>["value"];

/** What a diagnostic run gets. */
export interface DiagnosticContext {
  host: HostAccess;
  logger: Logger;
  /** Aborts at the command's timeout or at shutdown. */
  signal: AbortSignal;
  /** Marks the result as cut by a bound (output cap, list cap, time budget); sets `CommandOutcome.truncated`. */
  markTruncated?: () => void;
}

/** One on-demand diagnostic. Throws on failure (the error message goes back to the server). */
export interface DiagnosticDefinition<K extends DiagnosticName> {
  name: K;
  platforms: readonly Platform[];
  run(params: DiagnosticParams<K>, ctx: DiagnosticContext): Promise<DiagnosticResult<K>>;
}

/**
 * Typed map of lazy imports: a diagnostic's code (and its dependencies) loads on first use. Every params case must
 * appear, so a new diagnostic in the contract fails to compile until it is registered (`undefined` = not built yet).
 */
export type DiagnosticRegistry = { readonly [K in DiagnosticName]: (() => Promise<DiagnosticDefinition<K>>) | undefined };

/** The agent's diagnostics. */
export const diagnosticRegistry: DiagnosticRegistry = {
  fetchLogs: () => import("./fetch-logs/index.js").then((m) => m.fetchLogsDiagnostic),
  diskUsage: () => import("./disk-usage/index.js").then((m) => m.diskUsageDiagnostic),
  listMounts: () => import("./list-mounts/index.js").then((m) => m.listMountsDiagnostic),
  networkDiag: () => import("./network/index.js").then((m) => m.networkDiagDiagnostic),
};

// Commands queued through the legacy API may carry only a type; these give the case and default params.
const CASE_BY_TYPE: Partial<Record<CommandType, () => Command["params"]>> = {
  [CommandType.FETCH_LOGS]: () => ({ case: "fetchLogs", value: create(FetchLogsParamsSchema) }),
  [CommandType.DISK_USAGE]: () => ({ case: "diskUsage", value: create(DiskUsageParamsSchema) }),
  [CommandType.LIST_MOUNTS]: () => ({ case: "listMounts", value: create(ListMountsParamsSchema) }),
  [CommandType.NETWORK_DIAG]: () => ({ case: "networkDiag", value: create(NetworkDiagParamsSchema) }),
};
const TYPE_BY_CASE: Record<DiagnosticName, CommandType> = {
  fetchLogs: CommandType.FETCH_LOGS,
  diskUsage: CommandType.DISK_USAGE,
  listMounts: CommandType.LIST_MOUNTS,
  networkDiag: CommandType.NETWORK_DIAG,
};

/** Options for {@link runCommand}. */
export interface RunCommandOptions {
  host: HostAccess;
  logger: Logger;
  /** Per-command timeout. */
  timeoutMs: number;
  registry?: DiagnosticRegistry;
  /** What the agent's config allows; default everything. */
  policy?: DiagnosticPolicy;
  /** Aborts the command (shutdown). */
  signal?: AbortSignal;
  /** Milliseconds clock for the outcome's duration; default `monotonicMs` (agent/clock.ts). */
  now?: () => number;
}

/**
 * Runs one command through the registry and always returns an outcome: the result, or `error` set for an unknown or
 * unsupported type, a failure, or a timeout. Never throws.
 */
export async function runCommand(command: Command, opts: RunCommandOptions): Promise<CommandOutcome> {
  const registry = opts.registry ?? diagnosticRegistry;
  const params = command.params.case !== undefined ? command.params : CASE_BY_TYPE[command.type]?.();
  const type = command.type !== CommandType.UNSPECIFIED ? command.type : params?.case ? TYPE_BY_CASE[params.case] : CommandType.UNSPECIFIED;
  const now = opts.now ?? (() => monotonicMs());
  const started = now();
  const durationMs = () => Math.max(0, Math.round(now() - started));
  const fail = (error: string): CommandOutcome =>
    create(CommandOutcomeSchema, { commandId: command.id, type, error, durationMs: durationMs() });

  if (params === undefined || params.case === undefined) {
    return fail(`command type ${CommandType[command.type] ?? command.type} is not supported by this agent`);
  }
  if (command.type !== CommandType.UNSPECIFIED && TYPE_BY_CASE[params.case] !== command.type) {
    return fail(`command type ${CommandType[command.type] ?? command.type} does not match its parameters (${params.case})`);
  }
  const load = registry[params.case] as (() => Promise<DiagnosticDefinition<DiagnosticName>>) | undefined;
  if (load === undefined) return fail(`${params.case} is not supported by this agent yet`);
  const refused = policyRefusal(opts.policy ?? ALLOW_ALL, params.case, params.value as never, opts.host.platform);
  if (refused !== undefined) return fail(refused);

  const controller = new AbortController();
  const onAbort = (): void => controller.abort(new Error("agent stopping"));
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  if (opts.signal?.aborted) onAbort();
  let timer: NodeJS.Timeout | undefined;
  try {
    const def = await load();
    if (!def.platforms.includes(opts.host.platform)) return fail(`${params.case} is not supported on ${opts.host.platform}`);
    let truncated = false;
    const ctx: DiagnosticContext = {
      host: opts.host,
      logger: opts.logger,
      signal: controller.signal,
      markTruncated: () => {
        truncated = true;
      },
    };
    // Rejects at the timeout and at shutdown, even when the diagnostic ignores its signal.
    const stopped = new Promise<never>((_, reject) => {
      controller.signal.addEventListener("abort", () => reject(toError(controller.signal.reason)), { once: true });
    });
    timer = setTimeout(() => controller.abort(new Error(`timed out after ${formatDelay(opts.timeoutMs)}`)), opts.timeoutMs);
    const value = await Promise.race([def.run(params.value as never, ctx), stopped]);
    return create(CommandOutcomeSchema, {
      commandId: command.id,
      type,
      result: { case: params.case, value } as CommandOutcome["result"],
      truncated,
      durationMs: durationMs(),
    });
  } catch (err) {
    return fail(describe(err));
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onAbort);
  }
}

function toError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason ?? "aborted"));
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error && !err.message.includes(err.cause.message) ? `: ${err.cause.message}` : "";
  return `${err.message}${cause}`;
}
