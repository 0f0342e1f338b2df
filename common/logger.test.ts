import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.js";

describe("logger", () => {
  it("redacts credentials should anything log headers or request messages", () => {
    let out = "";
    const destination = new Writable({
      write(chunk: Buffer, _enc, cb) {
        out += chunk.toString();
        cb();
      },
    });
    const log = createLogger({ name: "t", level: "info", destination });
    log.info({ req: { headers: { authorization: "Bearer spt_secret1", host: "x" } } }, "a");
    log.info({ headers: { authorization: "Bearer spa_secret2" } }, "b");
    log.info({ request: { agentKey: "spa_secret3", enrollmentToken: "spe_secret4", enrollmentSecret: "s5", hostname: "web-01" } }, "c");
    log.info({ newAgentKey: "spa_secret6" }, "d");
    for (const secret of ["secret1", "secret2", "secret3", "secret4", '"s5"', "secret6"]) expect(out).not.toContain(secret);
    expect(out).toContain('"hostname":"web-01"');
    expect(out).toContain('"host":"x"');
    expect(out.match(/\[redacted\]/g)?.length).toBe(6);
  });
});
