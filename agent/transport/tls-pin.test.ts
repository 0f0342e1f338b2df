// Certificate pinning against a real HTTPS Connect server on 127.0.0.1 with a self-signed certificate made by the
// openssl CLI for this run (skipped, with a message, only where openssl is missing).
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http2 from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../../gen/spectra/v1/agent_service_pb.js";
import { MemoryMetricsSchema } from "../../gen/spectra/v1/metrics_pb.js";
import type { HostAccess } from "../host/host-access.js";
import { runCli } from "../main.js";
import { createBackoff } from "./backoff.js";
import { classifyError, createAgentConnection, type HttpMode } from "./client.js";
import { parseFingerprint, type ServerPin } from "./tls-pin.js";

let workDir = "";
let tls: { cert: string; key: string; pin: string; url: string; requests: () => number; authHeaders: (string | null)[] } | undefined;
let skipReason = "";
let closeServer: (() => Promise<void>) | undefined;

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 20_000 }, (err, _stdout, stderr) => (err ? reject(Object.assign(err, { stderr })) : resolve()));
  });
}

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), "spectra-pin-"));
  const keyFile = join(workDir, "key.pem");
  const certFile = join(workDir, "cert.pem");
  try {
    await run("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-days",
      "2",
      "-subj",
      "/CN=spectra-pin-test",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      skipReason = "the openssl CLI is not installed: TLS pinning tests skipped";
      console.warn(skipReason);
      return;
    }
    throw err;
  }
  const cert = readFileSync(certFile, "utf8");
  const key = readFileSync(keyFile, "utf8");
  // Computed independently of the code under test: Node's own "AB:CD:…" SHA-256 fingerprint.
  const pin = parseFingerprint(`sha256:${new X509Certificate(cert).fingerprint256}`)!;

  let requests = 0;
  const authHeaders: (string | null)[] = [];
  const impl: Partial<ServiceImpl<typeof AgentService>> = {
    async register(_req, ctx) {
      authHeaders.push(ctx.requestHeader.get("authorization"));
      return {};
    },
    async streamMetrics(reqs) {
      for await (const _ of reqs) void _;
      return {};
    },
    async *commandPoll(_req, ctx) {
      await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
    },
  };
  const handler = connectNodeAdapter({ routes: (r) => r.service(AgentService, impl) });
  const server = http2.createSecureServer({ cert, key, allowHTTP1: true }, (req, res) => {
    requests++;
    handler(req, res);
  });
  const sockets = new Set<Socket>();
  server.on("secureConnection", (s: Socket) => sockets.add(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  closeServer = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  tls = { cert, key, pin, url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, requests: () => requests, authHeaders };
});

afterAll(async () => {
  await closeServer?.();
  rmSync(workDir, { recursive: true, force: true });
});

describe("parseFingerprint", () => {
  it("accepts sha256:<hex> in lower, upper and colon-separated form, and nothing else", () => {
    const hex = "ab".repeat(32);
    expect(parseFingerprint(`sha256:${hex}`)).toBe(`sha256:${hex}`);
    expect(parseFingerprint(`SHA256:${hex.toUpperCase()}`)).toBe(`sha256:${hex}`);
    expect(parseFingerprint(`sha256:${"AB:".repeat(31)}AB`)).toBe(`sha256:${hex}`);
    for (const bad of [hex, `sha1:${hex}`, `sha256:${hex.slice(2)}`, `sha256:${hex}00`, `sha256:${"zz".repeat(32)}`, ""]) {
      expect(parseFingerprint(bad), bad).toBeUndefined();
    }
  });
});

describe("a pinned https:// server", () => {
  const wrongPin = `sha256:${"0".repeat(64)}`;

  async function call(mode: HttpMode, pin: ServerPin | undefined) {
    const connection = createAgentConnection({
      baseUrl: tls!.url,
      logger: pino({ level: "silent" }),
      initialMode: mode,
      credential: { current: () => "spa_1_pinned", refused: () => undefined, accepted: () => undefined },
      ...(pin ? { pin } : {}),
    });
    try {
      await connection.client().register({}, { timeoutMs: 5_000 });
      return undefined;
    } catch (err) {
      return classifyError(err);
    } finally {
      connection.close();
    }
  }

  for (const mode of ["h2", "http1"] as const) {
    it(`connects with the right pin (${mode}), self-signed as the certificate is`, async (ctx) => {
      if (!tls) return ctx.skip(skipReason);
      const before = tls.authHeaders.length;
      expect(await call(mode, { fingerprint: tls.pin, setting: "--server-fingerprint" })).toBeUndefined();
      expect(tls.authHeaders.slice(before)).toEqual(["Bearer spa_1_pinned"]);
    });

    it(`refuses a certificate other than the pinned one before sending anything (${mode})`, async (ctx) => {
      if (!tls) return ctx.skip(skipReason);
      const before = tls.requests();
      const failure = await call(mode, { fingerprint: wrongPin, setting: "--server-fingerprint" });
      expect(failure?.reason).toContain(`the server's certificate ${tls.pin} does not match --server-fingerprint ${wrongPin}`);
      // Not a protocol failure: a wrong certificate must not make the agent fall back to HTTP/1.1.
      expect(failure?.kind).not.toBe("protocol");
      expect(tls.requests()).toBe(before);
    });
  }

  it("without a pin, verifies the certificate against the CAs as usual", async (ctx) => {
    if (!tls) return ctx.skip(skipReason);
    const before = tls.requests();
    const failure = await call("h2", undefined);
    expect(failure?.reason).toMatch(/self[- ]signed certificate/i);
    expect(tls.requests()).toBe(before);
  });

  it("the agent registers with the right pin and names the setting on a mismatch", async (ctx) => {
    if (!tls) return ctx.skip(skipReason);
    const host: HostAccess = {
      platform: "linux",
      paths: { procRoot: "/nonexistent", sysRoot: "/nonexistent", rootfs: "/nonexistent" },
      exec: { run: () => Promise.reject(new Error("no exec in tests")) },
    };
    const deps = {
      collectorNames: ["memory"],
      loadCollector: async () => ({
        name: "memory",
        defaultIntervalMs: 100,
        platforms: ["linux", "windows"] as ("linux" | "windows")[],
        create: () => ({ collect: async () => [{ case: "memory" as const, value: create(MemoryMetricsSchema, { ramTotal: 1n }) }] }),
      }),
      host,
      tuning: { flushIntervalMs: 100, windowMs: 300, maxJitterMs: 10, backoff: () => createBackoff({ initialMs: 20, maxMs: 200, minMs: 5 }) },
    };
    for (const [pin, ok] of [
      [tls.pin, true],
      [wrongPin, false],
    ] as const) {
      const dataDir = mkdtempSync(join(workDir, "agent-"));
      const err = new PassThrough();
      let log = "";
      err.on("data", (c) => (log += String(c)));
      const shutdown = new AbortController();
      const registered = tls.authHeaders.length;
      const done = runCli(["--server", tls.url, "--data-dir", dataDir, "--hostname", "pinned-01"], {
        stderr: err,
        env: { SPECTRA_COLLECTORS: "memory", SPECTRA_SERVER_FINGERPRINT: pin },
        shutdown: shutdown.signal,
        deps,
      });
      const deadline = Date.now() + 10_000;
      const reached = (): boolean => (ok ? tls!.authHeaders.length > registered : log.includes("does not match SPECTRA_SERVER_FINGERPRINT"));
      while (!reached() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      shutdown.abort();
      expect(await done).toBe(0);
      expect(reached(), log).toBe(true);
    }
  });
});
