import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker, type WorkerOptions } from "node:worker_threads";

/**
 * Starts a worker thread on one of the project's modules, given as the URL of its compiled `.js`
 * (`new URL("./x.js", import.meta.url)`). From dist/ that file is there and runs as is. When it is not but the
 * `.ts` beside it is (running from sources: the tests), the worker runs the `.ts` with the loader of
 * scripts/ts-worker/ (esbuild, a devDependency), so the tests exercise the thread's real code.
 */
export function startModuleWorker(moduleUrl: URL, options: WorkerOptions = {}): Worker {
  if (existsSync(fileURLToPath(moduleUrl)) || !moduleUrl.pathname.endsWith(".js")) return new Worker(moduleUrl, options);
  const source = new URL(moduleUrl.href.replace(/\.js$/, ".ts"));
  if (!existsSync(fileURLToPath(source))) return new Worker(moduleUrl, options); // fails with Node's own message
  const register = new URL("../../scripts/ts-worker/register.mjs", import.meta.url);
  return new Worker(source, { ...options, execArgv: [...(options.execArgv ?? []), "--import", register.href] });
}
