/**
 * The simulated fleet of bench/fleet.ts, run as a worker thread of the bench process (never in the server's). Each
 * simulated agent behaves as a deployed one at the default intervals, in real time:
 *
 * - Connect agents: their own HTTP/2 connection (the agent's transport: agent/transport/client.ts's
 *   createAgentConnection, with its keepalive pings, gzip of messages ≥ 1 KiB and the key on every call), enrolled
 *   and registered with their own key, holding AgentService.CommandPoll open and sending one batch per 5 s tick
 *   (bench/lib/fleet.ts's payload through pool.ts's pre-encoded templates) on AgentService.StreamMetrics as the
 *   agent's sender does (agent/transport/sender.ts: each request written as its encoded bytes through the
 *   connection's raw stream, encodeRequestWithBatch): a stream stays open for a window of 30 s or 50 batches, then
 *   half-closes; acknowledged and rejected batches are retired, the rest go again in the next window. A command
 *   arriving on CommandPoll is recorded (id, time) and answered with a CommandResult (a list_mounts result).
 * - Legacy senders (the original Go agent): every 5 s the same tick's envelopes as gzipped JSON (legacy-body.ts's
 *   LegacyBodies: made once per template batch, filled in per agent) in
 *   `POST /api/v1/metrics?hostname=…` over their own keep-alive HTTP/1.1 connection (with their agent key, so their
 *   requests are charged to their own rate-limit bucket), and the long poll `GET /api/v1/agent/command` every 5 s.
 *
 * Everything is bounded: ticks stop at stopAtMs, open windows half-close then, and whatever has not answered after
 * the drain period is aborted.
 */
import { setPriority } from "node:os";
import { parentPort } from "node:worker_threads";
import { Agent as HttpAgent, request } from "node:http";
import { setMaxListeners } from "node:events";
import { create } from "@bufbuild/protobuf";
import { CommandOutcomeSchema, CommandType, type Command } from "../../gen/spectra/v1/diagnostics_pb.js";
import { silentLogger } from "../../common/logger.js";
import { createAgentConnection, type AgentConnection } from "../../agent/transport/client.js";
import { createBackoff } from "../../agent/transport/backoff.js";
import { encodeRequestWithBatch } from "../../agent/transport/sender.js";
import { buildPool, poolAgents, type PoolAgent } from "./pool.js";
import { enrollAll } from "./enroll.js";
import { LegacyBodies } from "./legacy-body.js";
import { ErrorTally, type ErrorSummary } from "./fleet-report.js";

export interface FleetInit {
  url: string;
  /** All agents of the fleet; this worker simulates those with id % workers === worker. */
  agents: number;
  workers: number;
  worker: number;
  /** Share of agents that are legacy REST senders (0–1). */
  legacyShare: number;
  templates: number;
  enrollToken: string;
  runTag: string;
  /** Sim time of the first samples (≈ the run's start). */
  runStartMs: number;
  reportIntervalMs: number;
  enrollConcurrency: number;
  enrollDeadlineMs: number;
  /**
   * Niceness of this worker thread (0: unchanged). Linux sets it per thread, so the server, a process of its own,
   * keeps its priority: on a machine too small for both, the server gets the CPU it needs and the simulated agents
   * run late instead (their lateness shows as fewer samples sent than the fleet's nominal rate).
   */
  nice: number;
}

export interface FleetRun {
  /** The first agent starts at startAtMs; the others over the first tick (spread evenly by id). */
  startAtMs: number;
  stopAtMs: number;
  /** After stopAtMs: how long open windows may take to be answered before everything is aborted. */
  drainMs: number;
  tickMs: number;
  windowMs: number;
  windowBatches: number;
}

export interface FleetInitReport {
  /** Connect agents enrolled (hostnames), legacy senders enrolled (count). */
  connectHosts: string[];
  legacyAgents: number;
  enrollFailures: number;
  enrollMs: number;
  errors: ErrorSummary;
}

export interface FleetRunReport {
  /** Per acknowledged batch: wall time of the acknowledgement, batch sent → ack (ms), samples. */
  ackAt: number[];
  ackMs: number[];
  ackSamples: number[];
  /** Per answered stream: wall time, half-close → response (ms). */
  closeAt: number[];
  closeMs: number[];
  /** Legacy POSTs answered 202: wall time of the answer, request → answer (ms), samples. */
  legacyAt: number[];
  legacyMs: number[];
  legacySamples: number[];
  /** Per batch made on an agent's tick (Connect and legacy): wall time and samples (the simulator's actual pace). */
  madeAt: number[];
  madeSamples: number[];
  /** Commands seen on CommandPoll: id and wall time of arrival. */
  arrivals: Array<[id: string, atMs: number]>;
  sentBatches: number;
  resentBatches: number;
  rejectedBatches: number;
  duplicateBatches: number;
  unackedAtEnd: number;
  streams: number;
  pollConnects: number;
  resultsDelivered: number;
  legacyPosts: number;
  legacyPolls: number;
  connectionsOpened: number;
  errors: ErrorSummary;
}

type Msg = { cmd: "init"; init: FleetInit } | { cmd: "run"; run: FleetRun } | { cmd: "abort" };

export const now = (): number => performance.timeOrigin + performance.now();

/** Whether agent `id` is a legacy sender: `share` of the ids, spread evenly. */
export function isLegacy(id: number, share: number): boolean {
  return Math.floor((id + 1) * share) > Math.floor(id * share);
}

const errors = new ErrorTally();
/** The legacy senders' JSON bodies, made once per template batch and filled in per agent (legacy-body.ts). */
const legacyBodies = new LegacyBodies();
let fleet: { connect: Array<{ a: PoolAgent; key: string }>; legacy: Array<{ a: PoolAgent; key: string }>; url: string; agents: number } | undefined;
const abortAll = new AbortController();
setMaxListeners(0, abortAll.signal);

parentPort?.on("message", (msg: Msg) => {
  if (msg.cmd === "abort") {
    abortAll.abort();
    return;
  }
  void (async () => {
    try {
      if (msg.cmd === "init") parentPort!.postMessage({ ok: true, report: await init(msg.init) });
      else parentPort!.postMessage({ ok: true, report: await run(msg.run) });
    } catch (err) {
      parentPort!.postMessage({ ok: false, error: (err as Error).stack ?? String(err) });
    }
  })();
});

async function init(o: FleetInit): Promise<FleetInitReport> {
  if (o.nice > 0) setPriority(o.nice); // this thread only (Linux)
  const t0 = performance.now();
  const { templates } = buildPool({ templates: Math.min(o.templates, o.agents), batchEnvelopes: 0, vmFormat: undefined });
  const mine = poolAgents(templates, o.agents, o.runStartMs, o.runTag).filter((a) => a.id % o.workers === o.worker);
  let failures = 0;
  const keys = await enrollAll(
    o.url,
    mine.map((a) => a.hostname),
    o.enrollToken,
    {
      concurrency: o.enrollConcurrency,
      reportIntervalMs: o.reportIntervalMs,
      deadlineMs: o.enrollDeadlineMs,
      onError: (_h, err) => {
        failures++;
        errors.add("enroll", err);
      },
    },
  );
  const connect: Array<{ a: PoolAgent; key: string }> = [];
  const legacy: Array<{ a: PoolAgent; key: string }> = [];
  mine.forEach((a, i) => {
    const key = keys[i];
    if (key === undefined) return;
    (isLegacy(a.id, o.legacyShare) ? legacy : connect).push({ a, key });
  });
  fleet = { connect, legacy, url: o.url, agents: o.agents };
  return {
    connectHosts: connect.map((x) => x.a.hostname),
    legacyAgents: legacy.length,
    enrollFailures: failures,
    enrollMs: performance.now() - t0,
    errors: errors.summary(),
  };
}

/**
 * A signal of its own that follows `parent`: Node's EventTarget checks every listener on each addEventListener, so
 * thousands of agents waiting on one shared signal cost O(agents) per wait; each agent waits on its own instead.
 */
function follow(parent: AbortSignal): AbortSignal {
  const c = new AbortController();
  setMaxListeners(0, c.signal);
  if (parent.aborted) c.abort();
  else parent.addEventListener("abort", () => c.abort(), { once: true });
  return c.signal;
}

/** A number in [0, 1) spread evenly-ish over ids (Knuth's multiplicative hash). */
export function spread(id: number): number {
  return ((Math.imul(id + 1, 2654435761) >>> 0) % 1_000_003) / 1_000_003;
}

/** Wakes waiters when a batch is queued or the run stops. */
class Signal {
  private waiters: Array<() => void> = [];
  notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  /** Resolves true when notified, false after `ms` or on abort. */
  wait(ms: number, abort: AbortSignal): Promise<boolean> {
    if (abort.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (v: boolean) => {
        clearTimeout(t);
        abort.removeEventListener("abort", onAbort);
        resolve(v);
      };
      const onAbort = () => done(false);
      const t = setTimeout(() => done(false), ms);
      abort.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(() => done(true));
    });
  }
}

interface Queued {
  /** The encoded StreamMetricsRequest, as the agent's sender writes it (encodeRequestWithBatch). */
  req: Uint8Array;
  sequence: bigint;
  samples: number;
  sentAt: number;
  resent: boolean;
}

async function run(r: FleetRun): Promise<FleetRunReport> {
  if (!fleet) throw new Error("init first");
  const { connect, legacy, url, agents } = fleet;
  const rep: FleetRunReport = {
    ackAt: [],
    ackMs: [],
    ackSamples: [],
    closeAt: [],
    closeMs: [],
    legacyAt: [],
    legacyMs: [],
    legacySamples: [],
    arrivals: [],
    madeAt: [],
    madeSamples: [],
    sentBatches: 0,
    resentBatches: 0,
    rejectedBatches: 0,
    duplicateBatches: 0,
    unackedAtEnd: 0,
    streams: 0,
    pollConnects: 0,
    resultsDelivered: 0,
    legacyPosts: 0,
    legacyPolls: 0,
    connectionsOpened: 0,
    errors: errors.summary(),
  };
  // stopping: no more ticks, windows half-close; hard: abort every call (after the drain, or on "abort")
  const stoppingAll = new AbortController();
  const hardAll = new AbortController();
  setMaxListeners(0, stoppingAll.signal);
  setMaxListeners(0, hardAll.signal);
  const onAbortAll = () => {
    stoppingAll.abort();
    hardAll.abort();
  };
  abortAll.signal.addEventListener("abort", onAbortAll, { once: true });
  const connections: AgentConnection[] = [];
  const httpAgents: HttpAgent[] = [];
  const startOf = (id: number) => r.startAtMs + (id / agents) * r.tickMs;
  const sleepUntil = (t: number, signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, t - Date.now()));
      signal.addEventListener("abort", done, { once: true });
    });

  /** Calls `fn` on the agent's tick grid from its start until stopAtMs. */
  const ticks = (id: number, fn: () => void) => {
    let k = 0;
    const next = () => {
      const at = startOf(id) + k * r.tickMs;
      if (at >= r.stopAtMs || stoppingAll.signal.aborted) return;
      setTimeout(() => {
        if (stoppingAll.signal.aborted) return;
        k++;
        fn();
        next();
      }, Math.max(0, at - Date.now()));
    };
    next();
  };

  const connectAgent = async ({ a, key }: { a: PoolAgent; key: string }) => {
    const stopping = { signal: follow(stoppingAll.signal) };
    const hard = { signal: follow(hardAll.signal) };
    await sleepUntil(startOf(a.id), stopping.signal);
    if (stopping.signal.aborted) return;
    const conn = createAgentConnection({
      baseUrl: url,
      logger: silentLogger(),
      credential: { current: () => key, refused: () => undefined, accepted: () => undefined },
    });
    connections.push(conn);
    rep.connectionsOpened++;
    const queue: Queued[] = [];
    const signal = new Signal();
    ticks(a.id, () => {
      const n = a.nextBatch();
      rep.madeAt.push(now());
      rep.madeSamples.push(n.samples);
      queue.push({ req: encodeRequestWithBatch(n), sequence: n.sequence, samples: n.samples, sentAt: 0, resent: false });
      if (queue.length > 10_000) queue.shift(); // the agent's spool is bounded too
      signal.notify();
    });
    stopping.signal.addEventListener("abort", () => signal.notify(), { once: true });

    const answer = async (cmd: Command) => {
      const outcome = create(CommandOutcomeSchema, {
        commandId: cmd.id,
        type: cmd.type,
        durationMs: 1,
        ...(cmd.type === CommandType.LIST_MOUNTS
          ? { result: { case: "listMounts", value: { mounts: [{ mountpoint: "/", device: "/dev/vda1", fstype: "ext4", options: "rw,relatime" }] } } }
          : { error: "not simulated" }),
      });
      try {
        await conn.client().commandResult({ hostname: a.hostname, outcome }, { timeoutMs: 15_000, signal: hard.signal });
        rep.resultsDelivered++;
      } catch (err) {
        if (!hard.signal.aborted) errors.add("CommandResult", err);
      }
    };

    const poll = async () => {
      const backoff = createBackoff();
      while (!stopping.signal.aborted) {
        try {
          rep.pollConnects++;
          // the agent's CommandPoll: no deadline, open until the server or the network ends it
          for await (const res of conn.client().commandPoll({ hostname: a.hostname }, { signal: stopping.signal })) {
            backoff.reset();
            if (res.command) {
              rep.arrivals.push([res.command.id, now()]);
              void answer(res.command);
            }
          }
          if (!stopping.signal.aborted) errors.add("CommandPoll", new Error("the server ended the stream"));
        } catch (err) {
          if (stopping.signal.aborted) break;
          errors.add("CommandPoll", err);
        }
        await sleepUntil(Date.now() + backoff.next(), stopping.signal);
      }
    };

    const send = async () => {
      const backoff = createBackoff();
      let first = true;
      while (!hard.signal.aborted) {
        if (queue.length === 0) {
          if (stopping.signal.aborted) break;
          await signal.wait(60_000, hard.signal);
          continue;
        }
        const sent: Queued[] = [];
        // The first window is a random part of a full one, as if the agent had been running for a while: in a
        // fleet, streams half-close at any moment, not all together one window after a common start.
        const windowEnd = Date.now() + (first ? Math.max(1_000, r.windowMs * spread(a.id)) : r.windowMs);
        first = false;
        let closedAt = 0;
        async function* requests(): AsyncGenerator<Uint8Array> {
          while (sent.length < r.windowBatches) {
            const q = queue.shift();
            if (!q) {
              const remaining = windowEnd - Date.now();
              if (stopping.signal.aborted || remaining <= 0 || !(await signal.wait(remaining, stopping.signal))) break;
              continue;
            }
            if (q.resent) rep.resentBatches++;
            q.sentAt = now();
            sent.push(q);
            rep.sentBatches++;
            yield q.req;
          }
          closedAt = now();
        }
        rep.streams++;
        try {
          // the agent's own path: each request written as its encoded bytes (agent/transport/raw-stream.ts)
          const res = await conn.streamMetrics(requests(), { signal: hard.signal, timeoutMs: r.windowMs + 15_000 });
          const at = now();
          if (closedAt > 0) {
            rep.closeAt.push(at);
            rep.closeMs.push(at - closedAt);
          }
          const acked = new Set(res.ackedSequences);
          const rejected = new Set(res.rejectedSequences);
          rep.duplicateBatches += res.duplicateBatches;
          if (rejected.size > 0) errors.add("rejected batch", new Error(res.rejectedReason));
          const again: Queued[] = [];
          for (const q of sent) {
            if (acked.has(q.sequence)) {
              rep.ackAt.push(at);
              rep.ackMs.push(at - q.sentAt);
              rep.ackSamples.push(q.samples);
            } else if (rejected.has(q.sequence)) rep.rejectedBatches++;
            else again.push({ ...q, resent: true });
          }
          queue.unshift(...again);
          if (again.length === sent.length && sent.length > 0) throw new Error(`the server acknowledged none of ${sent.length} batches`);
          backoff.reset();
        } catch (err) {
          if (hard.signal.aborted) {
            rep.unackedAtEnd += sent.length;
            break;
          }
          errors.add("StreamMetrics", err);
          if (sent.length > 0 && !sent.some((q) => queue.includes(q))) queue.unshift(...sent.map((q) => ({ ...q, resent: true })));
          await sleepUntil(Date.now() + backoff.next(), hard.signal);
        }
      }
      rep.unackedAtEnd += queue.length;
    };

    await Promise.all([poll(), send()]);
  };

  const legacyAgent = async ({ a, key }: { a: PoolAgent; key: string }) => {
    const stopping = { signal: follow(stoppingAll.signal) };
    const hard = { signal: follow(hardAll.signal) };
    await sleepUntil(startOf(a.id), stopping.signal);
    if (stopping.signal.aborted) return;
    // the Go agent's http.Client: one keep-alive pool (metrics and the long poll)
    const agent = new HttpAgent({ keepAlive: true, maxSockets: 2 });
    httpAgents.push(agent);
    rep.connectionsOpened++;
    const call = (method: string, path: string, body: Buffer | undefined, timeoutMs: number, signal: AbortSignal) =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        const u = new URL(path, url);
        const req = request(
          {
            host: u.hostname,
            port: u.port,
            path: u.pathname + u.search,
            method,
            agent,
            signal,
            timeout: timeoutMs,
            headers: {
              authorization: `Bearer ${key}`,
              "user-agent": "Spectra-Agent/1.0",
              ...(body ? { "content-type": "application/json", "content-encoding": "gzip", "content-length": body.length } : {}),
            },
          },
          (res) => {
            let text = "";
            res.setEncoding("utf8");
            res.on("data", (d: string) => {
              if (text.length < 500) text += d;
            });
            res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
            res.on("error", reject);
          },
        );
        req.on("timeout", () => req.destroy(new Error(`${method} ${u.pathname}: no answer after ${timeoutMs} ms`)));
        req.on("error", reject);
        req.end(body);
      });
    const host = encodeURIComponent(a.hostname);
    let inFlight = 0;
    ticks(a.id, () => {
      const n = a.nextBatch();
      rep.madeAt.push(now());
      rep.madeSamples.push(n.samples);
      if (inFlight >= 3) {
        errors.add("legacy POST /api/v1/metrics", new Error("3 posts still waiting: batch dropped"));
        return;
      }
      const body = legacyBodies.body(a.hostname, n.data, n.template, n.shiftSec);
      const t0 = now();
      inFlight++;
      rep.legacyPosts++;
      call("POST", `/api/v1/metrics?hostname=${host}`, body, 30_000, hard.signal)
        .then((res) => {
          if (res.status !== 202) throw new Error(`HTTP ${res.status}: ${res.text.trim()}`);
          const at = now();
          rep.legacyAt.push(at);
          rep.legacyMs.push(at - t0);
          rep.legacySamples.push(n.samples);
        })
        .catch((err: unknown) => {
          if (!hard.signal.aborted) errors.add("legacy POST /api/v1/metrics", err);
        })
        .finally(() => inFlight--);
    });
    // the original agent's command poll: every 5 s, a long poll the server holds up to 30 s
    while (!stopping.signal.aborted) {
      try {
        rep.legacyPolls++;
        const res = await call("GET", `/api/v1/agent/command?hostname=${host}`, undefined, 45_000, stopping.signal);
        if (res.status !== 200 && res.status !== 204) throw new Error(`HTTP ${res.status}: ${res.text.trim()}`);
      } catch (err) {
        if (stopping.signal.aborted || hard.signal.aborted) break;
        errors.add("legacy GET /api/v1/agent/command", err);
      }
      await sleepUntil(Date.now() + r.tickMs, stopping.signal);
    }
  };

  const stopTimer = setTimeout(() => stoppingAll.abort(), Math.max(0, r.stopAtMs - Date.now()));
  const hardTimer = setTimeout(() => hardAll.abort(), Math.max(0, r.stopAtMs - Date.now()) + r.drainMs);
  try {
    await Promise.all([...connect.map(connectAgent), ...legacy.map(legacyAgent)]);
  } finally {
    clearTimeout(stopTimer);
    clearTimeout(hardTimer);
    abortAll.signal.removeEventListener("abort", onAbortAll);
    hardAll.abort(); // long polls of legacy senders still open
    for (const c of connections) c.close();
    for (const h of httpAgents) h.destroy();
  }
  rep.errors = errors.summary();
  return rep;
}
