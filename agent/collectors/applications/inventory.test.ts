import { describe, expect, it } from "vitest";
import { ChangeTracker, diffInventories, type App, type Inventory } from "./inventory.js";
import { changeDirection, compareVersions } from "./version-compare.js";

const dpkg = (name: string, version: string, arch = "amd64"): App => ({ name, version, source: "dpkg", arch });
const snap = (name: string, version: string): App => ({ name, version, source: "snap" });
const inv = (apps: App[], failed: string[] = []): Inventory => ({ apps, failed: new Set(failed) });
const DAY = 86_400_000;

describe("compareVersions (dpkg ordering)", () => {
  it.each([
    ["1.0", "1.1", -1],
    ["1.10", "1.9", 1],
    ["1.0~rc1", "1.0", -1],
    ["1.0", "1.0+b1", -1],
    ["1.0a", "1.0", 1],
    ["1:0.9", "2.0", 1],
    ["2.36-9+deb12u4", "2.36-9+deb12u10", -1],
    ["1.0-1", "1.0-2", -1],
    ["1.36.1-r15", "1.36.1-r9", 1],
    ["10.0.19041.1", "10.0.19041.1", 0],
    ["1.0", "1.00", 0],
  ])("%s vs %s → %i", (a, b, want) => {
    expect(compareVersions(a, b)).toBe(want);
    expect(compareVersions(b, a)).toBe(-want || 0);
  });

  it("direction of a change", () => {
    expect(changeDirection("3.0.7-25", "3.0.7-27")).toBe("upgrade");
    expect(changeDirection("124.0", "123.0.1")).toBe("downgrade");
    expect(changeDirection("1.0", "1.00")).toBe("changed");
  });
});

describe("diffInventories", () => {
  it("added, removed and upgraded by name + source + arch, sorted by name", () => {
    const before = [dpkg("zlib1g", "1:1.2.13.dfsg-1"), dpkg("bash", "5.2.15-2+b2"), dpkg("libc6", "2.36-9", "i386"), snap("core22", "1")];
    const after = [dpkg("bash", "5.2.15-2+b8"), dpkg("zlib1g", "1:1.2.13.dfsg-1"), dpkg("curl", "7.88.1-10"), dpkg("apt", "2.6.1"), snap("core22", "1")];
    expect(diffInventories(before, after)).toEqual({
      added: [dpkg("apt", "2.6.1"), dpkg("curl", "7.88.1-10")],
      removed: [dpkg("libc6", "2.36-9", "i386")],
      upgraded: [{ name: "bash", source: "dpkg", arch: "amd64", fromVersion: "5.2.15-2+b2", toVersion: "5.2.15-2+b8", direction: "upgrade" }],
    });
  });

  it("the same name from another source or architecture is another application", () => {
    const d = diffInventories([dpkg("firefox", "115"), dpkg("libc6", "2.36", "amd64")], [snap("firefox", "123"), dpkg("libc6", "2.37", "i386")]);
    expect(d.upgraded).toEqual([]);
    expect(d.added.map((a) => `${a.source}:${a.name}:${a.arch ?? ""}`)).toEqual(["snap:firefox:", "dpkg:libc6:i386"]);
    expect(d.removed.map((a) => `${a.source}:${a.name}:${a.arch ?? ""}`)).toEqual(["dpkg:firefox:amd64", "dpkg:libc6:amd64"]);
  });

  it("several entries under one identity: equal versions cancel, the rest pair up", () => {
    const fp = (version: string, vendor: string): App => ({ name: "org.gnome.Calculator", version, source: "flatpak", arch: "x86_64", vendor });
    const d = diffInventories([fp("44.0", "flathub"), fp("45.0", "gnome-nightly")], [fp("45.0", "flathub"), fp("46.0", "gnome-nightly"), fp("46.0", "x")]);
    expect(d.upgraded.map((u) => [u.fromVersion, u.toVersion])).toEqual([["44.0", "46.0"]]);
    expect(d.added.map((a) => a.version)).toEqual(["46.0"]);
    expect(d.removed).toEqual([]);
  });
});

describe("ChangeTracker", () => {
  it("first in full with empty changes; unchanged → nothing; a change → full list plus changes", () => {
    const t = new ChangeTracker(7 * DAY);
    const first = t.next(inv([dpkg("bash", "1"), dpkg("apt", "2")]), 0);
    expect(first?.reason).toBe("first");
    expect(first?.apps.map((a) => a.name)).toEqual(["apt", "bash"]);
    expect(first?.changes).toEqual({ added: [], removed: [], upgraded: [] });

    // Same content in another order: unchanged.
    expect(t.next(inv([dpkg("apt", "2"), dpkg("bash", "1")]), DAY)).toBeUndefined();

    const changed = t.next(inv([dpkg("apt", "1.9"), dpkg("curl", "8")]), 2 * DAY);
    expect(changed?.reason).toBe("changed");
    expect(changed?.apps.map((a) => `${a.name} ${a.version}`)).toEqual(["apt 1.9", "curl 8"]);
    expect(changed?.changes.added.map((a) => a.name)).toEqual(["curl"]);
    expect(changed?.changes.removed.map((a) => a.name)).toEqual(["bash"]);
    expect(changed?.changes.upgraded).toEqual([
      { name: "apt", source: "dpkg", arch: "amd64", fromVersion: "2", toVersion: "1.9", direction: "downgrade" },
    ]);
    // Compared with the last one sent, not the first.
    expect(t.next(inv([dpkg("apt", "1.9"), dpkg("curl", "8")]), 3 * DAY)).toBeUndefined();
  });

  it("a vendor change alone is a change of the inventory (sent, with empty change lists)", () => {
    const t = new ChangeTracker(7 * DAY);
    t.next(inv([{ ...dpkg("a", "1"), vendor: "X" }]), 0);
    const r = t.next(inv([{ ...dpkg("a", "1"), vendor: "Y" }]), DAY);
    expect(r?.reason).toBe("changed");
    expect(r?.changes).toEqual({ added: [], removed: [], upgraded: [] });
  });

  it("full resend after the period since the last one sent, with empty changes", () => {
    const t = new ChangeTracker(7 * DAY);
    t.next(inv([dpkg("a", "1")]), 0);
    expect(t.next(inv([dpkg("a", "1")]), 7 * DAY - 1)).toBeUndefined();
    const r = t.next(inv([dpkg("a", "1")]), 7 * DAY);
    expect(r?.reason).toBe("resend");
    expect(r?.apps).toEqual([dpkg("a", "1")]);
    expect(r?.changes).toEqual({ added: [], removed: [], upgraded: [] });
    // The period restarts at each send, including sends for a change.
    expect(t.next(inv([dpkg("a", "2")]), 10 * DAY)?.reason).toBe("changed");
    expect(t.next(inv([dpkg("a", "2")]), 16 * DAY)).toBeUndefined();
    expect(t.next(inv([dpkg("a", "2")]), 17 * DAY)?.reason).toBe("resend");
  });

  it("a failing source keeps its last entries: not reported as removed, its changes seen when it answers again", () => {
    const t = new ChangeTracker(7 * DAY);
    t.next(inv([dpkg("a", "1"), snap("core22", "1"), snap("firefox", "1")]), 0);
    // snapd down: nothing changes.
    expect(t.next(inv([dpkg("a", "1")], ["snap"]), DAY)).toBeUndefined();
    // snapd down and dpkg changed: the snaps are carried in the full list.
    const r = t.next(inv([dpkg("a", "2")], ["snap"]), 2 * DAY);
    expect(r?.apps.map((a) => a.name)).toEqual(["a", "core22", "firefox"]);
    expect(r?.changes.removed).toEqual([]);
    // snapd back with a new firefox: reported against the carried entries.
    const back = t.next(inv([dpkg("a", "2"), snap("core22", "1"), snap("firefox", "2")]), 3 * DAY);
    expect(back?.changes.upgraded.map((u) => `${u.name} ${u.fromVersion}→${u.toVersion}`)).toEqual(["firefox 1→2"]);
  });

  it("a source failing from the start is not reported as added when it answers; a new source is", () => {
    const t = new ChangeTracker(7 * DAY);
    t.next(inv([dpkg("a", "1")], ["snap"]), 0);
    const back = t.next(inv([dpkg("a", "1"), snap("core22", "1")]), DAY);
    expect(back?.reason).toBe("changed");
    expect(back?.apps).toHaveLength(2);
    expect(back?.changes.added).toEqual([]);
    // From now on snap is known: a newly installed flatpak app and a new snap are both added.
    const more = t.next(inv([dpkg("a", "1"), snap("core22", "1"), snap("lxd", "5"), { name: "org.x.Y", version: "1", source: "flatpak" }]), 2 * DAY);
    expect(more?.changes.added.map((a) => a.name)).toEqual(["lxd", "org.x.Y"]);
  });
});
