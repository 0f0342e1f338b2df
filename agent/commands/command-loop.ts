import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "../../common/logger.js";
import { CommandOutcomeSchema, CommandType, type Command, type CommandOutcome } from "../../gen/spectra/v1/diagnostics_pb.js";
import type { HostAccess } from "../host/host-access.js";
import type { DiagnosticPolicy } from "../diagnostics/policy.js";
import { runCommand, type DiagnosticRegistry } from "../diagnostics/registry.js";
import { createBackoff, sleep, type Backoff } from "../transport/backoff.js";
import { isAuthFailure, RetryLog, retryMessage, type AgentConnection } from "../transport/client.js";

/** Options for {@link createCommandLoop}. */
export interface CommandLoopOptions {
  connection: AgentConnection;
  hostname: string;
  host: HostAccess;
  logger: Logger;
  registry?: DiagnosticRegistry;
  /** What the agent's config allows (`diagnostics:`); default everything. */
  policy?: DiagnosticPolicy;
  /** Commands running at once; default 2. */
  concurrency?: number;
  /** Commands waiting beyond the running ones; more are answered "agent busy". Default 16. */
  maxQueued?: number;
  /** Per-command timeout; default 120 s. */
  commandTimeoutMs?: number;
  /** Timeout of one CommandResult call; default 15 s. */
  resultTimeoutMs?: number;
  /** Attempts to deliver a result; default 4. */
  resultAttempts?: number;
  backoff?: Backoff;
  /** Awaited before each CommandPoll (the server refuses agents that have not registered); false skips the attempt. */
  waitUntilReady?: () => Promise<boolean>;
  /** Called when CommandPoll is refused because the server does not know this agent. */
  onNotRegistered?: () => void;
  /**
   * Called with `new_agent_key` when the server rotated this agent's key; stores it and switches to it. Awaited
   * before the next message is read; a rejection is logged and the old key stays in use (the server sends the new
   * key again on the next stream until it is used).
   */
  onNewAgentKey?: (key: string) => Promise<void>;
}

/** Counters for /debug/vars and tests. */
export interface CommandLoopStats {
  connects: number;
  received: number;
  completed: number;
  running: number;
  queued: number;
}

/** Holds the CommandPoll stream open and answers every command. */
export interface CommandLoop {
  start(): void;
  /** Closes the stream and aborts running commands. */
  stop(): Promise<void>;
  stats(): CommandLoopStats;
}

/**
 * Creates a {@link CommandLoop}. The CommandPoll server stream has no deadline (commands arrive whenever an admin
 * asks); it reconnects with backoff whenever the stream ends or fails. Each command runs through the diagnostics
 * registry with a timeout and a concurrency limit, and its outcome goes back with CommandResult (retried a few times).
 */
export function createCommandLoop(opts: CommandLoopOptions): CommandLoop {
  const log = opts.logger;
  const concurrency = opts.concurrency ?? 2;
  const maxQueued = opts.maxQueued ?? 16;
  const commandTimeoutMs = opts.commandTimeoutMs ?? 120_000;
  const resultTimeoutMs = opts.resultTimeoutMs ?? 15_000;
  const resultAttempts = opts.resultAttempts ?? 4;
  const backoff = opts.backoff ?? createBackoff();
  const retryLog = new RetryLog(log);
  const stopper = new AbortController();
  const stats: CommandLoopStats = { connects: 0, received: 0, completed: 0, running: 0, queued: 0 };

  const queue: Command[] = [];
  // Ids running, queued or recently answered: a redelivery after a reconnect must not run a command twice.
  const seen = new Set<string>();
  const recent: string[] = [];
  const tasks = new Set<Promise<void>>();
  let loop: Promise<void> | undefined;

  function remember(id: string): void {
    recent.push(id);
    if (recent.length > 256) seen.delete(recent.shift() ?? "");
  }

  function accept(command: Command): void {
    stats.received++;
    if (command.id !== "" && seen.has(command.id)) {
      log.debug({ commandId: command.id }, "command already handled; redelivery ignored");
      return;
    }
    seen.add(command.id);
    remember(command.id);
    log.info({ commandId: command.id, type: CommandType[command.type], params: command.params.case }, "command received");
    if (stats.running < concurrency) {
      launch(command);
    } else if (queue.length < maxQueued) {
      queue.push(command);
      stats.queued = queue.length;
    } else {
      track(
        deliver(
          create(CommandOutcomeSchema, {
            commandId: command.id,
            type: command.type,
            error: "agent busy: too many commands waiting",
          }),
        ),
      );
    }
  }

  function launch(command: Command): void {
    stats.running++;
    track(
      (async () => {
        try {
          const outcome = await runCommand(command, {
            host: opts.host,
            logger: log.child({ commandId: command.id }),
            timeoutMs: commandTimeoutMs,
            signal: stopper.signal,
            ...(opts.registry ? { registry: opts.registry } : {}),
            ...(opts.policy ? { policy: opts.policy } : {}),
          });
          if (outcome.error) log.warn({ commandId: command.id, err: outcome.error }, "command failed");
          await deliver(outcome);
        } finally {
          stats.running--;
          stats.completed++;
          const next = queue.shift();
          stats.queued = queue.length;
          if (next && !stopper.signal.aborted) launch(next);
        }
      })(),
    );
  }

  function track(p: Promise<void>): void {
    const t = p.catch((err: unknown) => log.error({ err: String(err) }, "command task failed")).finally(() => tasks.delete(t));
    tasks.add(t);
  }

  async function deliver(outcome: CommandOutcome): Promise<void> {
    const resultBackoff = createBackoff({ initialMs: 1_000, maxMs: 10_000 });
    for (let attempt = 1; attempt <= resultAttempts; attempt++) {
      try {
        await opts.connection
          .client()
          .commandResult({ hostname: opts.hostname, outcome }, { timeoutMs: resultTimeoutMs, signal: stopper.signal });
        log.info({ commandId: outcome.commandId, ok: outcome.error === "" }, "command result delivered");
        return;
      } catch (err) {
        if (stopper.signal.aborted) return;
        const failure = opts.connection.reportFailure(err);
        // The server refused the result itself (unknown or expired command): retrying cannot help.
        if (failure.kind === "server" && ConnectError.from(err).code !== Code.ResourceExhausted) {
          log.warn({ commandId: outcome.commandId, err: failure.reason }, "server refused the command result");
          return;
        }
        if (attempt === resultAttempts) {
          log.warn({ commandId: outcome.commandId, err: failure.reason }, "giving up on delivering a command result");
          return;
        }
        await sleep(resultBackoff.next(), stopper.signal);
      }
    }
  }

  async function takeNewKey(key: string): Promise<void> {
    if (!opts.onNewAgentKey) return;
    try {
      await opts.onNewAgentKey(key);
    } catch (err) {
      // Never the key itself.
      log.error({ err: err instanceof Error ? err.message : String(err) }, "could not store the rotated agent key; the current key stays in use");
    }
  }

  async function run(): Promise<void> {
    while (!stopper.signal.aborted) {
      const startedMs = Date.now();
      let failure: ReturnType<AgentConnection["reportFailure"]> | undefined;
      try {
        if (opts.waitUntilReady && !(await opts.waitUntilReady())) {
          if (stopper.signal.aborted) break;
          await sleep(backoff.next(), stopper.signal);
          continue;
        }
        stats.connects++;
        // No timeoutMs: the stream stays open until the server or the network ends it.
        const stream = opts.connection.client().commandPoll({ hostname: opts.hostname }, { signal: stopper.signal });
        for await (const res of stream) {
          opts.connection.reportSuccess();
          retryLog.succeeded("command stream reconnected");
          backoff.reset();
          if (res.newAgentKey !== "") await takeNewKey(res.newAgentKey);
          if (res.command) accept(res.command);
        }
      } catch (err) {
        if (stopper.signal.aborted) break;
        failure = opts.connection.reportFailure(err);
        const code = ConnectError.from(err).code;
        if (code === Code.FailedPrecondition || code === Code.NotFound) opts.onNotRegistered?.();
      }
      if (stopper.signal.aborted) break;
      // A stream that lived a while ended normally (server restart, proxy idle timeout): reconnect promptly.
      if (Date.now() - startedMs > 30_000) backoff.reset();
      const delay = failure ? opts.connection.retryDelay(failure, backoff) : backoff.next();
      if (failure && isAuthFailure(failure)) {
        // Logged once by the credential.
        log.debug({ rpc: "CommandPoll", err: failure.reason, delayMs: delay }, "credential refused");
      } else if (failure) {
        retryLog.failed(retryMessage(opts.connection.baseUrl, "CommandPoll", failure, delay), { rpc: "CommandPoll" });
      } else {
        log.debug({ delayMs: delay }, "command stream ended; reconnecting");
      }
      await sleep(delay, stopper.signal);
    }
  }

  return {
    start() {
      loop ??= run().catch((err: unknown) => log.error({ err: String(err) }, "command loop stopped unexpectedly"));
    },
    async stop() {
      stopper.abort();
      queue.length = 0;
      await loop;
      await Promise.all([...tasks]);
    },
    stats: () => ({ ...stats }),
  };
}
