// Lets a worker thread run the project's TypeScript sources directly: `new Worker(file.ts, { execArgv: ["--import",
// <this file>] })`. Only for running from sources (the tests; vitest cannot start a worker from a .ts file), never
// from dist/: common/threads/module-worker.ts adds it when the compiled .js beside the module is missing.
// The hooks (hooks.mjs) transpile .ts with esbuild, a devDependency.
import { register } from "node:module";

register("./hooks.mjs", import.meta.url);
