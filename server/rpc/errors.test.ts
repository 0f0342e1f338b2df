import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { Logger } from "../../common/logger.js";
import { toConnectError } from "./errors.js";

function recordingLogger() {
  const calls: Array<[string, string]> = [];
  const logger = {
    error: (_o: unknown, msg: string) => calls.push(["error", msg]),
    debug: (_o: unknown, msg: string) => calls.push(["debug", msg]),
  } as unknown as Logger;
  return { logger, calls };
}

describe("toConnectError", () => {
  it("answers a call the peer closed as Canceled, logged at debug, not as a server failure", () => {
    const { logger, calls } = recordingLogger();
    const gone = Object.assign(new Error("Premature close"), { code: "ERR_STREAM_PREMATURE_CLOSE" });
    expect(toConnectError(gone, logger, "spectra.v1.AgentService/StreamMetrics").code).toBe(Code.Canceled);
    expect(calls).toEqual([["debug", "rpc ended: the peer went away"]]);
  });

  it("logs anything unexpected as an error and answers Internal without its message", () => {
    const { logger, calls } = recordingLogger();
    const e = toConnectError(new Error("disk on fire"), logger, "x");
    expect(e.code).toBe(Code.Internal);
    expect(e.rawMessage).toBe("internal error");
    expect(calls).toEqual([["error", "rpc failed"]]);
  });
});
