// Bundles the agent into one CommonJS script, dist/agent/spectra-agent.cjs (the package's `spectra-agent` bin), plus
// dist/agent/spectra-agent-lazy.cjs beside it with the code loaded only when needed (see LAZY_FILE below), with
// esbuild. Run by `npm run build` after tsc; `npm run build:agent` runs this step alone.
//
// Why (measured, docs/benchmarks.md "Agent footprint"): the unbundled agent loads ~200 ES modules (its own,
// protobuf-es, connect, pino), each with the loader's bookkeeping and its own source and compiled code. One
// minified file lowers the peak RSS, and the bundle is also where connect's `Headers` can be swapped for a small
// implementation without touching the global (agent/transport/light-headers.ts): Node 20's global `Headers` loads
// all of undici.
//
// What stays as it was:
// - Lazy imports stay lazy: a collector or diagnostic that is not enabled is never evaluated (esbuild wraps
//   dynamically imported modules in an init function), and outside the core set it is not even in the main file.
// - dockerode (with its dependency tree) and yaml are not bundled: they are resolved from node_modules at run time,
//   only when the containers collector or --config needs them.
// - The V8 flags the agent sets for itself (agent/v8-flags.ts) are set by the first module evaluated.
//
// The bundle's first line is the agent's launch line, `#!/usr/bin/env -S <env> node <flags>` (AGENT_LAUNCH in
// agent/v8-flags.ts): settings that only the environment or a command line can give (--max-semi-space-size, malloc
// settings, ...). The `spectra-agent` bin starts with them; `npm start`, the footprint bench and the footprint gate
// read the line back and start the agent the same way. The file is made executable.
//
//   node scripts/build-agent.mjs [--outfile path] [--no-minify] [--metafile path]
import { build } from "esbuild";
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const outfile = opt("outfile", join(root, "dist", "agent", "spectra-agent.cjs"));
const minify = !argv.includes("--no-minify");
const metafile = opt("metafile", undefined);

/**
 * Node's built-in modules through require() instead of `import`: importing a built-in as an ES module makes Node
 * build a module facade that reads every export once, getters included (`import tls from "node:tls"` alone loads
 * the 144 root certificates of `tls.rootCertificates` as strings, for an agent that may never speak TLS). Through
 * require() the bundle reads only the properties it uses, when it uses them. Measured: -0.5 MB peak RSS.
 */
const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
const builtinsViaRequire = {
  name: "builtins-via-require",
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) =>
      builtins.has(args.path) && args.kind === "import-statement"
        ? { path: args.path.replace(/^node:/, ""), namespace: "builtin-via-require" }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "builtin-via-require" }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(`node:${args.path}`)});`,
      loader: "js",
    }));
  },
};

/**
 * pino's transport support, which the agent never uses (it logs to a stream: common/logger.ts), loads
 * `worker_threads` and thread-stream (with `assert`) when pino loads. In the bundle both are small stand-ins:
 * `isMainThread` is true (the agent runs no workers), and a transport, if one were ever asked for, fails loudly.
 * Measured with the other start-up built-ins: docs/benchmarks.md ("Agent footprint", 2026-11-28, item 21).
 */
const noTransportMsg = "pino transports are not available in the bundled agent (it logs to a stream)";
const noPinoTransports = {
  name: "no-pino-transports",
  setup(b) {
    b.onResolve({ filter: /^(node:)?worker_threads$|^thread-stream$/ }, (args) =>
      /[\\/]node_modules[\\/](pino|thread-stream)[\\/]/.test(args.importer) ? { path: args.path, namespace: "no-pino-transports" } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "no-pino-transports" }, (args) => ({
      contents: /worker_threads/.test(args.path)
        ? `module.exports = { isMainThread: true, threadId: 0, parentPort: null, workerData: undefined, Worker: class Worker { constructor() { throw new Error(${JSON.stringify(noTransportMsg)}); } } };`
        : `module.exports = class ThreadStream { constructor() { throw new Error(${JSON.stringify(noTransportMsg)}); } };`,
      loader: "js",
    }));
  },
};

/**
 * The lazily loaded code in a second file (LAZY_FILE beside the bundle), loaded on first need: collectors that are
 * not in the core set, the Windows halves of the core collectors, the diagnostics. V8 parses and keeps the whole
 * source of a file it loads, so code the agent never runs still costs memory in the main file (measured: -0.3 to
 * -0.5 MiB at rest, docs/benchmarks.md, "Agent footprint", 2026-11-28, item 23). One file rather than esbuild's
 * per-module chunks, which cost +4-5 MB (a module record per chunk).
 *
 * How: in the main file, a dynamic import() of a lazy module becomes `require(LAZY_FILE).load(<path>)` (through
 * a small loader module, evaluated at the first such import). The second file is built with every module the main
 * file already holds replaced by a reference to the main file's own instance, handed over by that loader (one
 * copy of each module, e.g. of the protobuf descriptors and the logger, whatever file the code is in).
 */
const LAZY_FILE = "spectra-agent-lazy.cjs";
/** Dynamically imported modules that stay in the main file: always loaded, or the core set's Linux code. */
const CORE_DYNAMIC = new Set(
  ["host/index.ts", "collectors/registry.ts", ...["cpu", "memory", "disk", "disk-io", "network", "system"].flatMap((c) => [`collectors/${c}/index.ts`, `collectors/${c}/linux.ts`])].map(
    (f) => join(root, "agent", ...f.split("/")),
  ),
);
const rel = (abs) => relative(root, abs).split("\\").join("/");

/** The export names of one source module (esbuild, not bundled). */
async function exportNames(path) {
  const r = await build({ entryPoints: [join(root, path)], bundle: false, format: "esm", write: false, metafile: true, outdir: "/out", logLevel: "warning" });
  return Object.values(r.metafile.outputs).flatMap((o) => o.exports ?? []);
}

/** Main file: lazy dynamic imports go through the loader; `shared` lists the modules handed to the second file. */
function lazyInMain(shared) {
  return {
    name: "lazy-in-main",
    setup(b) {
      b.onResolve({ filter: /^\./ }, (args) => {
        if (args.kind !== "dynamic-import" || !args.importer.startsWith(join(root, "agent"))) return undefined;
        const abs = join(args.resolveDir, args.path.replace(/\.js$/, ".ts"));
        if (CORE_DYNAMIC.has(abs) || !existsSync(abs)) return undefined;
        return { path: rel(abs), namespace: "lazy-stub" };
      });
      b.onResolve({ filter: /^spectra-lazy-loader$/ }, () => ({ path: "loader", namespace: "lazy-loader" }));
      b.onResolve({ filter: new RegExp(`^\\./${LAZY_FILE.replace(/\./g, "\\.")}$`) }, (args) => ({ path: args.path, external: true }));
      // An ES module with the lazy module's own export names (esbuild's CommonJS interop would make `default` the
      // whole module for an importer in a "type": "module" package).
      b.onLoad({ filter: /.*/, namespace: "lazy-stub" }, async (args) => {
        const names = await exportNames(args.path);
        return {
          contents: [
            `const m = require("spectra-lazy-loader").load(${JSON.stringify(args.path)});`,
            ...names.map((n) => (n === "default" ? "export default m.default;" : `export const ${n} = m.${n};`)),
          ].join("\n"),
          loader: "js",
          resolveDir: root,
        };
      });
      b.onLoad({ filter: /.*/, namespace: "lazy-loader" }, () => ({
        contents: [
          "const shared = {",
          ...[...shared].sort().map((m) => `  ${JSON.stringify(m)}: () => require(${JSON.stringify(join(root, m))}),`),
          "};",
          "let lazy;",
          `exports.load = (path) => (lazy ??= require("./${LAZY_FILE}")).load(path, (m) => shared[m]());`,
        ].join("\n"),
        loader: "js",
        resolveDir: root,
      }));
    },
  };
}

/** Second file: every module the main file holds comes from there (recorded in `shared`). */
function sharedFromMain(mainInputs, shared) {
  return {
    name: "shared-from-main",
    setup(b) {
      b.onResolve({ filter: /.*/ }, async (args) => {
        if (args.path === "spectra-shared-holder") return { path: "holder", namespace: "shared-holder" };
        if (args.pluginData?.inner || args.kind === "entry-point" || args.namespace !== "file") return undefined;
        const r = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: { inner: true } });
        if (r.errors.length > 0 || r.external || r.namespace !== "file" || !mainInputs.has(rel(r.path))) return undefined;
        shared.add(rel(r.path));
        return { path: rel(r.path), namespace: "shared" };
      });
      b.onLoad({ filter: /.*/, namespace: "shared-holder" }, () => ({
        contents: "let from;\nexports.set = (f) => { from = f; };\nexports.get = (m) => from(m);",
        loader: "js",
      }));
      b.onLoad({ filter: /.*/, namespace: "shared" }, (args) => ({
        contents: `module.exports = require("spectra-shared-holder").get(${JSON.stringify(args.path)});`,
        loader: "js",
        resolveDir: root,
      }));
    },
  };
}

const common = {
  bundle: true,
  platform: "node",
  target: "node20",
  // A CommonJS script, not an ES module: Node 20 then never loads its ES module loader for the agent (an empty
  // CommonJS script has 2 MB less RSS than an empty ES module; on the agent -0.3 MiB peak, -0.45 at rest:
  // docs/benchmarks.md, "Agent footprint", 2026-11-28).
  format: "cjs",
  // Fully minified: V8 parses the whole file at start, and the peak RSS followed the file's size (keeping the
  // identifiers, +200 KB, measured +1.4 MB peak). The source map beside it maps CPU profiles from --debug and
  // stack traces back to the sources.
  minify,
  sourcemap: "linked",
  legalComments: "linked",
  external: ["dockerode", "yaml"],
  // The sources are ES modules: `import.meta.url` (the agent finds its package.json, its own entry point and, through
  // createRequire, yaml) is the file's URL, computed once from __filename.
  define: { "import.meta.url": "__spectraImportMetaUrl" },
  // "use strict" first: the banner goes before esbuild's own directive, which would then no longer be one.
  banner: { js: '"use strict";var __spectraImportMetaUrl = require("node:url").pathToFileURL(__filename).href;' },
  logLevel: "warning",
};
const mainOptions = (shared) => ({
  ...common,
  entryPoints: [join(root, "agent", "main.ts")],
  outfile,
  metafile: true,
  // connect's `Headers` without loading undici (-3 MB RSS in the agent): free references to `Headers` in the
  // bundled code use agent/transport/light-headers.ts; globalThis.Headers stays the standard one.
  inject: [join(root, "agent", "transport", "light-headers.ts")],
  plugins: [lazyInMain(shared), noPinoTransports, builtinsViaRequire],
});
// 1. The main file, to learn which modules it holds; 2. the second file, which records what it takes from the main
// file; 3. the main file again, now with the loader handing those over.
const first = await build(mainOptions(new Set()));
const mainInputs = new Set(Object.keys(first.metafile.inputs).filter((k) => !k.includes(":")));
const shared = new Set();
const lazyRoots = [...new Set(Object.keys(first.metafile.inputs).filter((k) => k.startsWith("lazy-stub:")).map((k) => k.slice("lazy-stub:".length)))].sort();
await build({
  ...common,
  stdin: {
    contents: [
      'const holder = require("spectra-shared-holder");',
      "const roots = {",
      ...lazyRoots.map((m) => `  ${JSON.stringify(m)}: () => require(${JSON.stringify(`./${m}`)}),`),
      "};",
      "exports.load = (path, fromMain) => { holder.set(fromMain); return roots[path](); };",
    ].join("\n"),
    resolveDir: root,
    sourcefile: "agent-lazy-entry.js",
    loader: "js",
  },
  outfile: join(dirname(outfile), LAZY_FILE),
  plugins: [sharedFromMain(mainInputs, shared), noPinoTransports, builtinsViaRequire],
});
const result = await build(mainOptions(shared));
if (metafile) writeFileSync(metafile, JSON.stringify(result.metafile));
// The bundle was an ES module (spectra-agent.mjs) before 2026-11-28: leave no stale copy of it beside the new one.
for (const stale of ["spectra-agent.mjs", "spectra-agent.mjs.map"]) rmSync(join(dirname(outfile), stale), { force: true });

// The launch line, from agent/v8-flags.ts itself (bundled in memory and imported), so there is one list.
const flagsModule = await build({
  entryPoints: [join(root, "agent", "v8-flags.ts")],
  bundle: true,
  platform: "node",
  format: "esm",
  write: false,
  logLevel: "warning",
});
const { agentShebang } = await import(`data:text/javascript;base64,${Buffer.from(flagsModule.outputFiles[0].contents).toString("base64")}`);
const shebang = agentShebang();
{
  // esbuild keeps main.ts's `#!/usr/bin/env node`; replace that one line (the source map's lines stay aligned).
  const text = readFileSync(outfile, "utf8");
  if (!text.startsWith("#!")) {
    console.error(`${relative(root, outfile)}: expected a #! line from agent/main.ts`);
    process.exit(1);
  }
  writeFileSync(outfile, `${shebang}${text.slice(text.indexOf("\n"))}`);
  chmodSync(outfile, 0o755);
}

// V8 keeps a script's source in memory; one character outside ASCII makes it a two-byte string, twice the size.
// (An unminified build keeps the comments, some of which are not ASCII: it is for reading, not for running.)
for (const file of [outfile, join(dirname(outfile), LAZY_FILE)]) {
  const out = readFileSync(file);
  const at = minify ? out.findIndex((b) => b > 0x7f) : -1;
  if (at >= 0) {
    const line = out.subarray(0, at).toString("latin1").split("\n").length;
    console.error(`${relative(root, file)}:${line}: a non-ASCII character; escape it in the source (e.g. \\u2713)`);
    process.exit(1);
  }
}
