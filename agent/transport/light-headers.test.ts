import { describe, expect, it } from "vitest";
import { LightHeaders } from "./light-headers.js";

type AnyHeaders = Headers | LightHeaders;
type Ctor = new (init?: ConstructorParameters<typeof Headers>[0]) => AnyHeaders;

function dump(h: AnyHeaders): unknown {
  return {
    entries: [...h],
    keys: [...h.keys()],
    values: [...h.values()],
    forEach: (() => {
      const out: [string, string][] = [];
      h.forEach((v, k) => out.push([k, v]));
      return out;
    })(),
    setCookie: h.getSetCookie(),
  };
}

/** Every case runs against Node's (undici's) Headers and ours; the results must be the same. */
const cases: [string, (H: Ctor) => unknown][] = [
  ["empty", (H) => dump(new H())],
  ["record init", (H) => dump(new H({ "Content-Type": "application/proto", "X-B": " padded\t", "x-a": "1" }))],
  [
    "pairs init with repeats",
    (H) =>
      dump(
        new H([
          ["A", "1"],
          ["a", "2"],
          ["Set-Cookie", "x=1"],
          ["set-cookie", "y=2"],
        ]),
      ),
  ],
  ["copy of another Headers", (H) => dump(new H(new H([["Grpc-Status", "0"], ["grpc-message", "ok"]])))],
  [
    "append, set, get, has, delete",
    (H) => {
      const h = new H();
      h.append("Connect-Protocol-Version", "1");
      h.append("Accept-Encoding", "gzip");
      h.append("accept-encoding", "br");
      const before = [h.get("ACCEPT-ENCODING"), h.has("connect-protocol-version"), h.get("missing")];
      h.set("Accept-Encoding", "identity");
      h.delete("connect-protocol-version");
      return [before, h.get("accept-encoding"), h.has("Connect-Protocol-Version"), dump(h)];
    },
  ],
  ["empty value", (H) => dump(new H({ "x-empty": "" }))],
  [
    "invalid name throws TypeError",
    (H) => {
      try {
        new H({ "bad name": "x" });
        return "no error";
      } catch (err) {
        return err instanceof TypeError;
      }
    },
  ],
  [
    "invalid value throws TypeError",
    (H) => {
      try {
        new H().append("x", "a\r\nInjected: 1");
        return "no error";
      } catch (err) {
        return err instanceof TypeError;
      }
    },
  ],
  [
    "bad pair throws TypeError",
    (H) => {
      try {
        new H([["a", "b", "c"]] as unknown as [string, string][]);
        return "no error";
      } catch (err) {
        return err instanceof TypeError;
      }
    },
  ],
];

describe("LightHeaders", () => {
  it.each(cases)("behaves like the standard Headers: %s", (_name, run) => {
    expect(run(LightHeaders as unknown as Ctor)).toEqual(run(Headers as Ctor));
  });

  it("reports itself as Headers", () => {
    expect(Object.prototype.toString.call(new LightHeaders())).toBe("[object Headers]");
  });
});
