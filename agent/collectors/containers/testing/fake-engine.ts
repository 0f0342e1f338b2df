import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const testdata = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "testdata", "docker");
const load = (f: string): unknown => JSON.parse(fs.readFileSync(path.join(testdata, f), "utf8"));

/** One request the fake engine saw. */
export interface SeenRequest {
  kind: "list" | "stats" | "stats-one-shot" | "inspect" | "other";
  name: string;
}

/** A Docker Engine stand-in on a unix socket that serves the captured JSON of `testdata/docker/`. */
export interface FakeEngine {
  socketPath: string;
  seen: SeenRequest[];
  /** Most requests in flight at once (the collector's concurrency bound). */
  maxInFlight: number;
  /** Per container name: answer its stats/inspect with this HTTP status instead. */
  failWith: Map<string, number>;
  /** Per container name: a different list `State` (the rest of the entry stays). */
  stateOverride: Map<string, string>;
  close(): Promise<void>;
}

/**
 * Starts the fake engine (telegraf's approach: a small HTTP server with captured answers). The list is the
 * captured one; non-one-shot stats answer each container's captured `docker-stats-<name>.json`; one-shot stats
 * for spectra-busy answer `t0` then `t1` (then `t1` again), for the others their captured answer. Inspect
 * answers the captured spectra-busy inspect, and for the others a HAND-WRITTEN minimal inspect (state, start
 * time, restart count 2 for spectra-idle, a 128 MiB limit for spectra-mem). Every answer is delayed `delayMs`.
 */
export async function startFakeEngine(dir: string, delayMs = 20): Promise<FakeEngine> {
  const list = load("docker-listContainers.json") as Array<{ Id: string; Names: string[]; State: string }>;
  const byId = new Map(list.map((c) => [c.Id, c]));
  const oneShotBusy = [
    load("docker-stats-oneshot-spectra-busy.t0.json"),
    load("docker-stats-oneshot-spectra-busy.t1.json"),
  ];
  let busyShots = 0;
  let inFlight = 0;
  const engine: FakeEngine = {
    socketPath: path.join(dir, `docker-${process.pid}-${Math.random().toString(36).slice(2)}.sock`),
    seen: [],
    maxInFlight: 0,
    failWith: new Map(),
    stateOverride: new Map(),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const nameOf = (id: string): string => byId.get(id)?.Names[0]?.replace(/^\//, "") ?? id;
  const handle = (req: http.IncomingMessage): [number, unknown] => {
    const url = new URL(req.url ?? "/", "http://engine");
    const p = url.pathname.replace(/^\/v[\d.]+/, "");
    if (p === "/containers/json") {
      engine.seen.push({ kind: "list", name: "" });
      return [200, list.map((c) => ({ ...c, State: engine.stateOverride.get(nameOf(c.Id)) ?? c.State }))];
    }
    const m = /^\/containers\/([0-9a-f]{64})\/(stats|json)$/.exec(p);
    if (!m) {
      engine.seen.push({ kind: "other", name: p });
      return [404, { message: "page not found" }];
    }
    const id = m[1] as string;
    const name = nameOf(id);
    const oneShot = url.searchParams.get("one-shot") === "true";
    engine.seen.push({ kind: m[2] === "json" ? "inspect" : oneShot ? "stats-one-shot" : "stats", name });
    const fail = engine.failWith.get(name);
    if (fail !== undefined) return [fail, { message: fail === 404 ? `No such container: ${id}` : "boom" }];
    if (!byId.has(id)) return [404, { message: `No such container: ${id}` }];
    if (m[2] === "stats") {
      if (oneShot && name === "spectra-busy") return [200, oneShotBusy[Math.min(busyShots++, 1)]];
      return [200, load(`docker-stats-${name}.json`)];
    }
    if (name === "spectra-busy") return [200, load("docker-inspect-spectra-busy.trimmed.json")];
    const state = engine.stateOverride.get(name) ?? byId.get(id)?.State ?? "running";
    return [
      200,
      {
        Id: id,
        Name: `/${name}`,
        State: {
          Status: state,
          StartedAt: state === "created" ? "0001-01-01T00:00:00Z" : "2026-11-27T08:52:46.000000000Z",
        },
        RestartCount: name === "spectra-idle" ? 2 : 0,
        HostConfig: { Memory: name === "spectra-mem" ? 134217728 : 0, NanoCpus: 0, CpuQuota: 0, CpuPeriod: 0 },
      },
    ];
  };
  const server = http.createServer((req, res) => {
    inFlight++;
    engine.maxInFlight = Math.max(engine.maxInFlight, inFlight);
    setTimeout(() => {
      inFlight--;
      const [status, body] = handle(req);
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    }, delayMs);
  });
  await new Promise<void>((resolve) => server.listen(engine.socketPath, resolve));
  return engine;
}

/** A unix socket that accepts connections and never answers (a hung engine). */
export async function startHungSocket(dir: string): Promise<{ socketPath: string; close(): Promise<void> }> {
  const socketPath = path.join(dir, `hung-${process.pid}-${Math.random().toString(36).slice(2)}.sock`);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    socketPath,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
