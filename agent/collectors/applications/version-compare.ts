/**
 * Version ordering in the style of dpkg (`dpkg --compare-versions`, lib/dpkg/version.c): `[epoch:]upstream[-revision]`,
 * compared epoch first (numerically), then upstream, then revision, each with dpkg's `verrevcmp`: runs of
 * non-digits compare character by character with letters before other characters and `~` before everything (even
 * the end of the string), runs of digits compare numerically. rpm, apk, pacman and Windows versions are not dpkg
 * versions, but for the usual dotted-number shapes (`1.2.10-3.el9`, `1.36.1-r15`, `10.0.19041.1`) this ordering
 * agrees with theirs; it is only used to tell an upgrade from a downgrade in logs (the contract carries no
 * direction), never to decide whether something changed, which is plain string inequality.
 */
export function compareVersions(a: string, b: string): number {
  const pa = splitVersion(a);
  const pb = splitVersion(b);
  if (pa.epoch !== pb.epoch) return pa.epoch < pb.epoch ? -1 : 1;
  return sign(verrevcmp(pa.upstream, pb.upstream)) || sign(verrevcmp(pa.revision, pb.revision));
}

/** "upgrade" when `to` orders after `from`, "downgrade" before, "changed" when they differ only in spelling. */
export function changeDirection(from: string, to: string): "upgrade" | "downgrade" | "changed" {
  const c = compareVersions(to, from);
  return c > 0 ? "upgrade" : c < 0 ? "downgrade" : "changed";
}

function sign(n: number): number {
  return n < 0 ? -1 : n > 0 ? 1 : 0;
}

function splitVersion(v: string): { epoch: number; upstream: string; revision: string } {
  let rest = v.trim();
  let epoch = 0;
  const m = /^(\d+):/.exec(rest);
  if (m) {
    epoch = Number(m[1]);
    rest = rest.slice(m[0].length);
  }
  const dash = rest.lastIndexOf("-");
  return dash > 0 ? { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) } : { epoch, upstream: rest, revision: "" };
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}

/** dpkg's character weight: end of string and digits 0, `~` below everything, letters before other characters. */
function order(c: string | undefined): number {
  if (c === undefined || isDigit(c)) return 0;
  if (c === "~") return -1;
  const code = c.charCodeAt(0);
  if ((c >= "a" && c <= "z") || (c >= "A" && c <= "Z")) return code;
  return code + 256;
}

function verrevcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while ((i < a.length && !isDigit(a[i])) || (j < b.length && !isDigit(b[j]))) {
      const ac = order(a[i]);
      const bc = order(b[j]);
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (a[i] === "0") i++;
    while (b[j] === "0") j++;
    let firstDiff = 0;
    while (isDigit(a[i]) && isDigit(b[j])) {
      if (firstDiff === 0) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (isDigit(a[i])) return 1;
    if (isDigit(b[j])) return -1;
    if (firstDiff !== 0) return firstDiff;
  }
  return 0;
}
