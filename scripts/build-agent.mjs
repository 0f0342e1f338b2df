// Bundles the agent into one ES module, dist/agent/spectra-agent.mjs (the package's `spectra-agent` bin), with
// esbuild. Run by `npm run build` after tsc; `npm run build:agent` runs this step alone.
//
// Why (measured, docs/benchmarks.md "Agent footprint"): the unbundled agent loads ~200 ES modules (its own,
// protobuf-es, connect, pino), each with the loader's bookkeeping and its own source and compiled code. One
// minified file lowers the peak RSS, and the bundle is also where connect's `Headers` can be swapped for a small
// implementation without touching the global (agent/transport/light-headers.ts): Node 20's global `Headers` loads
// all of undici.
//
// What stays as it was:
// - Lazy imports stay lazy: a collector or diagnostic that is not enabled is in the file but never evaluated
//   (esbuild wraps dynamically imported modules in an init function).
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
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const outfile = opt("outfile", join(root, "dist", "agent", "spectra-agent.mjs"));
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

const result = await build({
  entryPoints: [join(root, "agent", "main.ts")],
  outfile,
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  // Fully minified: V8 parses the whole file at start, and the peak RSS followed the file's size (keeping the
  // identifiers, +200 KB, measured +1.4 MB peak). The source map beside it maps CPU profiles from --debug and
  // stack traces back to the sources.
  minify,
  sourcemap: "linked",
  legalComments: "linked",
  metafile: metafile !== undefined,
  external: ["dockerode", "yaml"],
  // connect's `Headers` without loading undici (-3 MB RSS in the agent): free references to `Headers` in the
  // bundled code use agent/transport/light-headers.ts; globalThis.Headers stays the standard one.
  inject: [join(root, "agent", "transport", "light-headers.ts")],
  // CommonJS dependencies (pino) call require() for Node's built-ins, which an ES module does not have.
  banner: { js: 'import { createRequire as __spectraCreateRequire } from "node:module"; const require = __spectraCreateRequire(import.meta.url);' },
  plugins: [builtinsViaRequire],
  logLevel: "warning",
});
if (metafile) writeFileSync(metafile, JSON.stringify(result.metafile));

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
const out = readFileSync(outfile);
const at = minify ? out.findIndex((b) => b > 0x7f) : -1;
if (at >= 0) {
  const line = out.subarray(0, at).toString("latin1").split("\n").length;
  console.error(`${relative(root, outfile)}:${line}: a non-ASCII character; escape it in the source (e.g. \\u2713)`);
  process.exit(1);
}
