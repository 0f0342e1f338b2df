/** Series identity helpers: canonical label text, parsing it back, and label matchers. */

export type Labels = ReadonlyArray<readonly [name: string, value: string]>;

/** `a="x",b="y"` with labels sorted by name; `"` and `\` in values escaped. "" for no labels. */
export function canonicalLabels(labels: Labels): string {
  if (labels.length === 0) return "";
  const sorted = labels.length > 1 ? [...labels].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)) : labels;
  let out = "";
  for (const [k, v] of sorted) {
    if (out !== "") out += ",";
    out += `${k}="${v.replace(/[\\"]/g, (c) => "\\" + c)}"`;
  }
  return out;
}

/** Parses canonical label text back into pairs. Throws on malformed text. */
export function parseLabels(text: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('="', i);
    if (eq < 0) throw new Error(`malformed labels: ${text}`);
    const name = text.slice(i, eq);
    let j = eq + 2;
    let value = "";
    for (;;) {
      if (j >= text.length) throw new Error(`malformed labels: ${text}`);
      const c = text[j]!;
      if (c === "\\") {
        value += text[j + 1] ?? "";
        j += 2;
      } else if (c === '"') {
        j++;
        break;
      } else {
        value += c;
        j++;
      }
    }
    out.push([name, value]);
    if (j < text.length) {
      if (text[j] !== ",") throw new Error(`malformed labels: ${text}`);
      j++;
    }
    i = j;
  }
  return out;
}

/** One label condition: equal, not equal, regular expression match or non-match (whole value). */
export interface LabelMatcher {
  name: string;
  op: "=" | "!=" | "=~" | "!~";
  value: string;
}

/** Compiles matchers into a predicate over label pairs; a missing label has the value "". */
export function compileMatchers(matchers: readonly LabelMatcher[]): (labels: Labels) => boolean {
  const tests = matchers.map((m) => {
    if (m.op === "=" || m.op === "!=") {
      const want = m.op === "=";
      return (v: string) => (v === m.value) === want;
    }
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${m.value})$`);
    } catch (err) {
      throw new Error(`label matcher ${m.name}${m.op}"${m.value}": ${(err as Error).message}`);
    }
    const want = m.op === "=~";
    return (v: string) => re.test(v) === want;
  });
  return (labels) =>
    matchers.every((m, i) => {
      const found = labels.find((l) => l[0] === m.name);
      return tests[i]!(found ? found[1] : "");
    });
}
