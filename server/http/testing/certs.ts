/**
 * Test PKI for mutual TLS, made with the `openssl` command at test time (Node 20 cannot make X.509 certificates):
 * a CA, a server certificate for 127.0.0.1 / localhost, client certificates signed by that CA, and a second CA
 * with a client certificate of its own (the one that must be refused). EC P-256, valid two days.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { certificateFingerprint } from "../self-signed.js";

/** Whether the openssl command is there (tests that need it are skipped otherwise, saying so). */
export const hasOpenssl = spawnSync("openssl", ["version"]).status === 0;

/** A certificate with its key: file paths and contents. */
export interface TestCert {
  certPath: string;
  keyPath: string;
  cert: Buffer;
  key: Buffer;
  /** `sha256:<hex>`, as the server pins it. */
  fingerprint: string;
}

export interface TestPki {
  ca: TestCert;
  server: TestCert;
  /** Client certificates signed by `ca`, by name. */
  clients: Record<string, TestCert>;
  /** Another CA, and a client certificate it signed. */
  otherCa: TestCert;
  foreignClient: TestCert;
}

function openssl(args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"], timeout: 20_000 });
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

function load(dir: string, name: string): TestCert {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  const cert = readFileSync(certPath);
  return { certPath, keyPath, cert, key: readFileSync(keyPath), fingerprint: certificateFingerprint(cert) };
}

function makeCa(dir: string, name: string): TestCert {
  openssl([
    "req", "-x509", ...EC, "-days", "2", "-subj", `/CN=${name}`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    "-keyout", join(dir, `${name}.key`), "-out", join(dir, `${name}.crt`),
  ]);
  return load(dir, name);
}

function makeLeaf(dir: string, ca: TestCert, name: string, ext: string): TestCert {
  const csr = join(dir, `${name}.csr`);
  const extFile = join(dir, `${name}.ext`);
  writeFileSync(extFile, `${ext}\n`);
  openssl(["req", "-new", ...EC, "-subj", `/CN=${name}`, "-keyout", join(dir, `${name}.key`), "-out", csr]);
  openssl([
    "x509", "-req", "-in", csr, "-CA", ca.certPath, "-CAkey", ca.keyPath, "-set_serial", String(Date.now() % 1e9 + name.length),
    "-days", "2", "-extfile", extFile, "-out", join(dir, `${name}.crt`),
  ]);
  return load(dir, name);
}

/** Makes the PKI in `dir` (a temporary directory the caller removes); `clientNames` get CA-signed client certs. */
export function makeTestPki(dir: string, clientNames: string[]): TestPki {
  const ca = makeCa(dir, "ca");
  const server = makeLeaf(dir, ca, "server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth");
  const clients: Record<string, TestCert> = {};
  for (const n of clientNames) clients[n] = makeLeaf(dir, ca, n, "extendedKeyUsage=clientAuth");
  const otherCa = makeCa(dir, "other-ca");
  const foreignClient = makeLeaf(dir, otherCa, "foreign", "extendedKeyUsage=clientAuth");
  return { ca, server, clients, otherCa, foreignClient };
}
