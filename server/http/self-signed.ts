/**
 * `--tls-self-signed`: a self-signed certificate for trials, made once with the `openssl` command (Node 20 can make
 * key pairs but not X.509 certificates) and kept in `<dataDir>/tls/`, so agents can pin its fingerprint across
 * restarts. Argument arrays, no shell, a timeout.
 */
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { hostname as osHostname, networkInterfaces } from "node:os";
import { join } from "node:path";
import { isIP } from "node:net";

/** A certificate and key ready for the listener, and where they live. */
export interface SelfSignedTls {
  cert: Buffer;
  key: Buffer;
  certPath: string;
  keyPath: string;
  /** `sha256:<64 lowercase hex digits>`: what `spectra-agent --server-fingerprint` takes. */
  fingerprint: string;
  /** True when it was made now (false: reused from an earlier start). */
  created: boolean;
}

/** The pinning form of a certificate's fingerprint: SHA-256 of its DER bytes, `sha256:` + lowercase hex, no colons. */
export function certificateFingerprint(pem: string | Buffer): string {
  return `sha256:${new X509Certificate(pem).fingerprint256.replaceAll(":", "").toLowerCase()}`;
}

/** Host names and addresses the certificate names: localhost, this host, the listen address, every interface. */
export function subjectNames(listenHost: string): { dns: string[]; ips: string[] } {
  const dns = new Set(["localhost", osHostname()]);
  const ips = new Set(["127.0.0.1", "::1"]);
  if (listenHost && listenHost !== "0.0.0.0" && listenHost !== "::") (isIP(listenHost) ? ips : dns).add(listenHost);
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) ips.add(a.address.replace(/%.*$/, ""));
  }
  return { dns: [...dns].filter((d) => /^[A-Za-z0-9.-]+$/.test(d)), ips: [...ips] };
}

function run(file: string, args: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 1024 * 1024 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return reject(new Error(`the "${file}" command is needed to make a self-signed certificate and was not found`));
      reject(new Error(`${file} failed: ${String(stderr).trim().split("\n").slice(-2).join(" ") || err.message}`));
    });
  });
}

/**
 * Returns the certificate in `<dataDir>/tls/` (self-signed.crt, self-signed.key), making it first when it is not
 * there: EC P-256, valid 825 days, names from {@link subjectNames}. Throws an Error with a clear message when openssl
 * is missing or fails.
 */
export async function ensureSelfSignedCertificate(
  dataDir: string,
  listenHost: string,
  opts: { openssl?: string; timeoutMs?: number } = {},
): Promise<SelfSignedTls> {
  const dir = join(dataDir, "tls");
  const certPath = join(dir, "self-signed.crt");
  const keyPath = join(dir, "self-signed.key");
  let created = false;
  if (!existsSync(certPath) || !existsSync(keyPath)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmpCert = `${certPath}.${process.pid}.tmp`;
    const tmpKey = `${keyPath}.${process.pid}.tmp`;
    const { dns, ips } = subjectNames(listenHost);
    const san = [...dns.map((d) => `DNS:${d}`), ...ips.map((i) => `IP:${i}`)].join(",");
    try {
      await run(
        opts.openssl ?? "openssl",
        [
          "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
          "-keyout", tmpKey, "-out", tmpCert, "-days", "825",
          "-subj", `/CN=${dns[1] ?? "spectra"}/O=Spectra self-signed`,
          "-addext", `subjectAltName=${san}`,
        ],
        opts.timeoutMs ?? 30_000,
      );
      chmodSync(tmpKey, 0o600);
      renameSync(tmpKey, keyPath);
      renameSync(tmpCert, certPath);
      created = true;
    } finally {
      rmSync(tmpCert, { force: true });
      rmSync(tmpKey, { force: true });
    }
  }
  const cert = readFileSync(certPath);
  const key = readFileSync(keyPath);
  return { cert, key, certPath, keyPath, fingerprint: certificateFingerprint(cert), created };
}
