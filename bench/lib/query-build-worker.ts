/** Worker of bench/query.ts: builds the rows of one host per request (query-store.ts) and transfers them. */
import { parentPort } from "node:worker_threads";
import { buildHost, type BuildSpec } from "./query-store.js";

parentPort!.on("message", (msg: { spec: BuildSpec; host: number }) => {
  try {
    const rows = buildHost(msg.spec, msg.host);
    parentPort!.postMessage({ ok: true, rows }, [rows.data.buffer as ArrayBuffer, rows.chunks.buffer as ArrayBuffer, rows.rollups.buffer as ArrayBuffer]);
  } catch (err) {
    parentPort!.postMessage({ ok: false, error: (err as Error).stack ?? String(err) });
  }
});
