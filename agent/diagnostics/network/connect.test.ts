import { EventEmitter } from "node:events";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NetworkAction } from "../../../gen/spectra/v1/diagnostics_pb.js";
import { runConnect, type ConnectDeps, type ConnectRequest } from "./connect.js";
import { parseNetworkParams } from "./params.js";
import { neverAborts } from "./testing/fake-host.js";

const connectReq = (target: string, timeoutMs = 0): ConnectRequest =>
  parseNetworkParams({ action: NetworkAction.CONNECT, target, count: 0, timeoutMs, maxHops: 0 } as never) as ConnectRequest;

/** A fake socket that emits what the test says, when it says. */
function fakeSocket(behaviour: "connect" | "hang" | NodeJS.ErrnoException): Socket {
  const s = new EventEmitter() as EventEmitter & { destroy(): void; destroyed: boolean };
  s.destroyed = false;
  s.destroy = () => {
    s.destroyed = true;
  };
  setTimeout(() => {
    if (behaviour === "connect") s.emit("connect");
    else if (behaviour !== "hang") s.emit("error", behaviour);
  }, 1);
  return s as unknown as Socket;
}

const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`${code} message`), { code });

describe("TCP connect LIVE on loopback", () => {
  let server: Server;
  let openPort = 0;
  let closedPort = 0;

  beforeAll(async () => {
    server = createServer((s) => s.destroy());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    openPort = (server.address() as AddressInfo).port;
    // A port that was just free: bind, note, close (nothing listens there afterwards).
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    closedPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it("reports OK and the connect time for a listening port", async () => {
    const result = await runConnect(connectReq(`127.0.0.1:${openPort}`), { signal: neverAborts });
    expect(result).toMatchObject({ action: "connect", target: `127.0.0.1:${openPort}`, tool: "tcp" });
    expect(result.pingResults).toHaveLength(1);
    const r = result.pingResults[0];
    expect(r).toMatchObject({ seq: 1, success: true, response: "OK", peer: `127.0.0.1:${openPort}` });
    expect(r?.rtt).toBeGreaterThan(0n);
    expect(r?.rtt).toBeLessThan(3_000_000_000n);
  });

  it("reports 'failed: connection refused' for a closed port", async () => {
    const result = await runConnect(connectReq(`127.0.0.1:${closedPort}`), { signal: neverAborts });
    expect(result.pingResults[0]).toMatchObject({ seq: 1, success: false, response: "failed: connection refused", peer: `127.0.0.1:${closedPort}` });
  });

  it("resolves localhost and tries its next address when the first refuses", async () => {
    const result = await runConnect(connectReq(`localhost:${openPort}`), { signal: neverAborts });
    expect(result.pingResults[0]).toMatchObject({ success: true, response: "OK", peer: `127.0.0.1:${openPort}` });
  });
});

describe("TCP connect with fake sockets and resolver", () => {
  const base = (over: Partial<ConnectDeps>): ConnectDeps => ({
    lookup: () => Promise.resolve([{ address: "192.0.2.10", family: 4 }]),
    connect: () => fakeSocket("connect"),
    ...over,
  });

  it("fails with 'failed: timeout' at the timeout and destroys the socket", async () => {
    let socket: Socket | undefined;
    const started = Date.now();
    const result = await runConnect(
      connectReq("192.0.2.10:443", 150),
      { signal: neverAborts },
      base({
        connect: () => {
          socket = fakeSocket("hang");
          return socket;
        },
      }),
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(result.pingResults[0]).toMatchObject({ success: false, response: "failed: timeout", peer: "192.0.2.10:443" });
    expect((socket as unknown as { destroyed: boolean }).destroyed).toBe(true);
  });

  it("reports a DNS failure without connecting", async () => {
    let connects = 0;
    const result = await runConnect(
      connectReq("nosuch.invalid:80"),
      { signal: neverAborts },
      base({
        lookup: () => Promise.reject(errno("ENOTFOUND")),
        connect: () => {
          connects++;
          return fakeSocket("connect");
        },
      }),
    );
    expect(connects).toBe(0);
    expect(result.pingResults[0]).toMatchObject({ success: false, response: "failed: DNS lookup failed: host not found (ENOTFOUND)", peer: "" });
  });

  it("counts a resolver that does not answer against the same timeout", async () => {
    const result = await runConnect(connectReq("slow.example:80", 100), { signal: neverAborts }, base({ lookup: () => new Promise(() => {}) }));
    expect(result.pingResults[0]?.response).toBe("failed: DNS lookup failed: timed out after 100 ms");
  });

  it("tries the next address after a refusal, stops after a timeout, and brackets IPv6 peers", async () => {
    const tried: string[] = [];
    const result = await runConnect(
      connectReq("dual.example:22", 200),
      { signal: neverAborts },
      base({
        lookup: () =>
          Promise.resolve([
            { address: "2001:db8::1", family: 6 },
            { address: "192.0.2.1", family: 4 },
            { address: "192.0.2.2", family: 4 },
          ]),
        connect: (o) => {
          tried.push(o.host);
          return fakeSocket(o.host === "2001:db8::1" ? errno("ECONNREFUSED") : "hang");
        },
      }),
    );
    expect(tried).toEqual(["2001:db8::1", "192.0.2.1"]);
    expect(result.pingResults[0]).toMatchObject({ success: false, response: "failed: timeout", peer: "192.0.2.1:22" });

    const v6 = await runConnect(connectReq("[2001:db8::1]:22"), { signal: neverAborts }, base({}));
    expect(v6.pingResults[0]).toMatchObject({ success: true, response: "OK", peer: "[2001:db8::1]:22" });
  });

  it("maps socket errors to the legacy wording", async () => {
    for (const [code, text] of [
      ["EHOSTUNREACH", "failed: host unreachable"],
      ["ENETUNREACH", "failed: network unreachable"],
      ["ECONNRESET", "failed: connection reset"],
      ["EWEIRD", "failed: EWEIRD message"],
    ] as const) {
      const result = await runConnect(connectReq("192.0.2.10:443"), { signal: neverAborts }, base({ connect: () => fakeSocket(errno(code)) }));
      expect(result.pingResults[0]?.response).toBe(text);
    }
  });

  it("stops when the command is aborted", async () => {
    const ac = new AbortController();
    const pending = runConnect(connectReq("192.0.2.10:443"), { signal: ac.signal }, base({ connect: () => fakeSocket("hang") }));
    ac.abort(new Error("agent stopping"));
    await expect(pending).rejects.toThrow("connect aborted");
  });
});
