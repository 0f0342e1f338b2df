// `npm start`: runs the built server (embedded SQLite in ./data) and an agent for this host connected to it.
// Both stop together on Ctrl-C. Settings pass through the environment (SPECTRA_LISTEN, SPECTRA_DATA_DIR, ...).
// The local agent enrolls with a single-use, auto-approving enrollment token made here (through the server's
// `enroll-token create` subcommand, on the same database) the first time, and uses its stored key afterwards.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

const listen = process.env.SPECTRA_LISTEN ?? "127.0.0.1:8080";
const port = listen.slice(listen.lastIndexOf(":") + 1);
const server = "dist/server/main.js";
// The agent as installed (the package bin): the bundle built by scripts/build-agent.mjs.
const agent = "dist/agent/spectra-agent.cjs";
if (!existsSync(server)) {
  console.error("dist/ is missing: run `npm run build` first (npm start does it for you).");
  process.exit(1);
}

/**
 * The agent is started as its bin would be: with the environment and node flags of the bundle's `#!` line (its
 * footprint settings, agent/v8-flags.ts AGENT_LAUNCH), by this same node.
 */
async function agentLaunch(file) {
  const { launchFromShebang } = await import("../dist/agent/v8-flags.js");
  return launchFromShebang(readFileSync(file, "utf8").slice(0, 512).split("\n")[0]);
}

const children = [];
function run(name, file, env, nodeFlags = []) {
  const child = spawn(process.execPath, [...nodeFlags, file], { stdio: "inherit", env: { ...process.env, ...env } });
  child.on("exit", (code, signal) => {
    if (!stopping) {
      console.error(`${name} exited (${signal ?? code}); stopping Spectra`);
      stop();
    }
  });
  children.push(child);
  return child;
}

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
  setTimeout(() => process.exit(0), 8000).unref();
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);

const dataDir = process.env.SPECTRA_DATA_DIR ?? "./data";
const agentDataDir = process.env.SPECTRA_AGENT_DATA_DIR ?? "./data/agent";

/** An enrollment token for the local agent when it has no key yet (and none was given). */
function localEnrollToken() {
  if (process.env.SPECTRA_ENROLL_TOKEN || existsSync(join(agentDataDir, "agent.key"))) return {};
  const r = spawnSync(
    process.execPath,
    [server, "enroll-token", "create", "--name", "npm-start-local-agent", "--auto-approve", "--ttl", "1h"],
    { env: { ...process.env, SPECTRA_DATA_DIR: dataDir }, encoding: "utf8", timeout: 30_000 },
  );
  const token = r.stdout?.trim();
  if (r.status !== 0 || !token) {
    console.error(`could not make an enrollment token for the local agent:\n${r.stderr ?? r.error}`);
    return {};
  }
  return { SPECTRA_ENROLL_TOKEN: token };
}

const enroll = existsSync(agent) ? localEnrollToken() : {};
run("spectra-server", server, { SPECTRA_LISTEN: listen, SPECTRA_DATA_DIR: dataDir });
if (existsSync(agent)) {
  const launch = await agentLaunch(agent);
  // Give the server a moment to bind; the agent retries with backoff anyway.
  setTimeout(() => {
    run(
      "spectra-agent",
      agent,
      {
        ...launch.env,
        SPECTRA_SERVER: process.env.SPECTRA_SERVER ?? `http://127.0.0.1:${port}`,
        SPECTRA_DATA_DIR: agentDataDir,
        ...enroll,
      },
      launch.nodeFlags,
    );
  }, 500);
}
