/**
 * A small implementation of the Fetch standard's `Headers` class, for the bundled agent only.
 *
 * Why: connect uses `Headers` for every call's headers and trailers, and Node 20's global `Headers` lives in the
 * bundled undici, which loads as a whole on first use: 12 MB of RSS in a bare process, 3 MB in the agent
 * (docs/benchmarks.md). The agent bundle (scripts/build-agent.mjs) has esbuild replace the free name `Headers` in
 * the bundled code with this class; the global stays untouched, so anything else in the process still gets the
 * standard one. The unbundled build (dist/agent/main.js, tests) keeps using the global.
 *
 * Follows https://fetch.spec.whatwg.org/#headers-class for what connect needs and a little more: case-insensitive
 * names, value normalization (leading and trailing HTTP whitespace removed), validation of names and values
 * (TypeError), combined values joined with ", ", `getSetCookie`, iteration sorted by name. No guard (immutable
 * headers) and no forbidden-header lists: those belong to fetch's Request and Response, which this does not
 * replace.
 */
export class LightHeaders {
  /** Lower-case name → values in insertion order. */
  readonly #map = new Map<string, string[]>();

  constructor(init?: ConstructorParameters<typeof Headers>[0] | LightHeaders) {
    if (init === undefined || init === null) return;
    if (typeof init !== "object") throw new TypeError("Headers: init must be an object");
    if (Symbol.iterator in init) {
      for (const pair of init as Iterable<Iterable<string>>) {
        const kv = [...pair];
        if (kv.length !== 2) throw new TypeError("Headers: each header pair must be [name, value]");
        this.append(kv[0]!, kv[1]!);
      }
      return;
    }
    for (const key of Object.keys(init)) this.append(key, (init as Record<string, string>)[key]!);
  }

  append(name: string, value: string): void {
    const key = checkName(name);
    const v = normalizeValue(value);
    const list = this.#map.get(key);
    if (list) list.push(v);
    else this.#map.set(key, [v]);
  }

  set(name: string, value: string): void {
    this.#map.set(checkName(name), [normalizeValue(value)]);
  }

  get(name: string): string | null {
    const list = this.#map.get(checkName(name));
    return list === undefined ? null : list.join(", ");
  }

  getSetCookie(): string[] {
    return [...(this.#map.get("set-cookie") ?? [])];
  }

  has(name: string): boolean {
    return this.#map.has(checkName(name));
  }

  delete(name: string): void {
    this.#map.delete(checkName(name));
  }

  forEach(callback: (value: string, key: string, parent: LightHeaders) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) callback.call(thisArg, v, k, this);
  }

  *entries(): Generator<[string, string], undefined, undefined> {
    const names = [...this.#map.keys()].sort();
    for (const name of names) {
      const list = this.#map.get(name);
      if (list === undefined) continue; // deleted during iteration
      if (name === "set-cookie") for (const v of list) yield [name, v];
      else yield [name, list.join(", ")];
    }
  }

  *keys(): Generator<string, undefined, undefined> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): Generator<string, undefined, undefined> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): Generator<[string, string], undefined, undefined> {
    return this.entries();
  }

  get [Symbol.toStringTag](): string {
    return "Headers";
  }
}

// RFC 9110 token characters.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// A header value must not contain NUL, CR or LF (the Fetch standard's "header value").
const BAD_VALUE = /[\0\r\n]/;
// HTTP whitespace: tab, line feed, carriage return, space.
const EDGE_WHITESPACE = /^[\t\n\r ]+|[\t\n\r ]+$/g;

function checkName(name: string): string {
  const s = String(name);
  if (!TOKEN.test(s)) throw new TypeError(`Headers: invalid header name "${s}"`);
  return s.toLowerCase();
}

function normalizeValue(value: string): string {
  const s = String(value).replace(EDGE_WHITESPACE, "");
  if (BAD_VALUE.test(s)) throw new TypeError("Headers: invalid header value");
  return s;
}

export { LightHeaders as Headers };
