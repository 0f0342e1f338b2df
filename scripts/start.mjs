// `npm start`: runs the built server (embedded SQLite in ./data) and an agent for this host connected to it.
// Both stop together on Ctrl-C. Settings pass through the environment (SPECTRA_LISTEN, SPECTRA_DATA_DIR, ...).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";

const listen = process.env.SPECTRA_LISTEN ?? "127.0.0.1:8080";
const port = listen.slice(listen.lastIndexOf(":") + 1);
const server = "dist/server/main.js";
const agent = "dist/agent/main.js";
if (!existsSync(server)) {
  console.error("dist/ is missing: run `npm run build` first (npm start does it for you).");
  process.exit(1);
}

const children = [];
function run(name, file, env) {
  const child = spawn(process.execPath, [file], { stdio: "inherit", env: { ...process.env, ...env } });
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

run("spectra-server", server, { SPECTRA_LISTEN: listen, SPECTRA_DATA_DIR: process.env.SPECTRA_DATA_DIR ?? "./data" });
if (existsSync(agent)) {
  // Give the server a moment to bind; the agent retries with backoff anyway.
  setTimeout(() => {
    run("spectra-agent", agent, {
      SPECTRA_SERVER: process.env.SPECTRA_SERVER ?? `http://127.0.0.1:${port}`,
      SPECTRA_DATA_DIR: process.env.SPECTRA_AGENT_DATA_DIR ?? "./data/agent",
    });
  }, 500);
}
