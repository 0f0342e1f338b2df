import { describe, expect, it } from "vitest";
import { bearerToken, generateCredential, hashSecret, parseCredential, roleAtLeast, verifySecret } from "./credentials.js";

describe("credentials", () => {
  it("generates spt/spe/spa tokens whose secret only the holder has", () => {
    const a = generateCredential("admin");
    expect(a.token).toMatch(/^spt_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(generateCredential("enrollment").token).toMatch(/^spe_/);
    expect(generateCredential("agent").token).toMatch(/^spa_/);
    const parsed = parseCredential(a.token);
    expect(parsed).toEqual({ kind: "admin", id: a.id, secret: a.token.slice(21) });
    expect(a.hash).toBe(hashSecret(parsed!.secret));
    expect(a.hash).not.toContain(parsed!.secret);
    expect(generateCredential("admin").id).not.toBe(a.id);
  });

  it("parses only well-formed tokens of the asked kind (secrets may contain '_')", () => {
    const secret = "ab_cd-ef".padEnd(43, "x");
    expect(parseCredential(`spa_0123456789abcdef_${secret}`)).toEqual({ kind: "agent", id: "0123456789abcdef", secret });
    expect(parseCredential(`spa_0123456789abcdef_${secret}`, "admin")).toBeUndefined();
    for (const bad of ["", "spa", "spa_", `spx_0123456789abcdef_${secret}`, `spa_0123456789ABCDEF_${secret}`, `spa_0123_${secret}`, "spa_0123456789abcdef_short", `spa_0123456789abcdef_${secret}!`]) {
      expect(parseCredential(bad), bad).toBeUndefined();
    }
  });

  it("verifies a secret against its hash, refusing anything else", () => {
    const c = generateCredential("agent");
    const secret = parseCredential(c.token)!.secret;
    expect(verifySecret(secret, c.hash)).toBe(true);
    expect(verifySecret(secret.slice(0, -1) + (secret.endsWith("A") ? "B" : "A"), c.hash)).toBe(false);
    expect(verifySecret(secret, "00".repeat(32))).toBe(false);
    expect(verifySecret(secret, "abc")).toBe(false); // a malformed stored hash
  });

  it("orders roles and reads Bearer headers", () => {
    expect(roleAtLeast("admin", "operator")).toBe(true);
    expect(roleAtLeast("operator", "operator")).toBe(true);
    expect(roleAtLeast("viewer", "operator")).toBe(false);
    expect(bearerToken("Bearer abc")).toBe("abc");
    expect(bearerToken("bearer  abc ")).toBe("abc");
    expect(bearerToken("Basic abc")).toBeUndefined();
    expect(bearerToken("Bearer a b")).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
});
