// Module hooks for register.mjs: a relative `./x.js` import that has no x.js but an x.ts resolves to the .ts
// (the sources import with .js extensions, as NodeNext requires), and .ts files are transpiled with esbuild.
import { readFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { transform } from "esbuild";

export async function resolve(specifier, context, nextResolve) {
  if (specifier.endsWith(".js") && (specifier.startsWith(".") || specifier.startsWith("file:")) && context.parentURL) {
    const url = new URL(specifier, context.parentURL);
    if (url.protocol === "file:" && !existsSync(fileURLToPath(url))) {
      const ts = new URL(url.href.slice(0, -3) + ".ts");
      if (existsSync(fileURLToPath(ts))) return { url: ts.href, shortCircuit: true };
    }
  }
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  if (!url.endsWith(".ts")) return nextLoad(url, context);
  const source = await readFile(fileURLToPath(url), "utf8");
  const out = await transform(source, { loader: "ts", format: "esm", target: "node20", sourcemap: "inline", sourcefile: url });
  return { format: "module", source: out.code, shortCircuit: true };
}
