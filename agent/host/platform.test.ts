import { describe, expect, it } from "vitest";
import { createHostAccess, DEFAULT_HOST_PATHS } from "./index.js";
import { detectPlatform, platformFromNodeName } from "./platform.js";

describe("platform", () => {
  it("maps Node platform names", () => {
    expect(platformFromNodeName("linux")).toBe("linux");
    expect(platformFromNodeName("win32")).toBe("windows");
    expect(() => platformFromNodeName("darwin")).toThrow(/unsupported platform: darwin/);
  });

  it("detects this machine", () => {
    expect(detectPlatform()).toBe("linux");
  });
});

describe("createHostAccess", () => {
  it("defaults to /proc, /sys and no rootfs prefix", () => {
    const host = createHostAccess();
    expect(host.platform).toBe("linux");
    expect(host.paths).toEqual(DEFAULT_HOST_PATHS);
    expect(typeof host.exec.run).toBe("function");
  });

  it("takes partial overrides and trims trailing slashes", () => {
    const host = createHostAccess({ procRoot: "/host/proc/", rootfs: "/" }, { platform: "windows" });
    expect(host.paths).toEqual({ procRoot: "/host/proc", sysRoot: "/sys", rootfs: "" });
    expect(host.platform).toBe("windows");
  });
});
