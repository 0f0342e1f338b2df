/**
 * The client certificate of a request, for mutual TLS: what the listener verified against --tls-client-ca.
 * Pinning (server/auth/cert-pins.ts) compares its fingerprint in the same `sha256:<hex>` form the agent's
 * --server-fingerprint uses.
 */

/** The parts of a socket this reads (a TLSSocket, or the proxy an HTTP/2 compat request hands out). */
interface MaybeTlsSocket {
  encrypted?: boolean;
  authorized?: boolean;
  getPeerCertificate?: (detailed?: boolean) => { fingerprint256?: string } | null;
}

/**
 * The fingerprint (`sha256:` + 64 lowercase hex digits of the DER bytes) of the certificate the peer of `socket`
 * presented and the listener verified against the client CA; undefined on cleartext, without a certificate, or when
 * it did not verify (with --tls-client-auth optional such connections are closed by the listener anyway).
 */
export function clientCertificateOf(socket: unknown): string | undefined {
  const s = socket as MaybeTlsSocket | null | undefined;
  if (!s || s.encrypted !== true || s.authorized !== true || typeof s.getPeerCertificate !== "function") return undefined;
  const fp = s.getPeerCertificate(false)?.fingerprint256;
  return fp ? `sha256:${fp.replaceAll(":", "").toLowerCase()}` : undefined;
}
