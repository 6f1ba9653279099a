import { readFileSync, unwatchFile, watchFile } from "node:fs";
import { createSecureContext, type Server as TlsServer } from "node:tls";

/** A listener's certificate chain and private key, and the files they were read from. */
export interface ListenerTls {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** How often the files are looked at for a renewed certificate (a stat each: a mounted secret is swapped, not written in place). */
const RENEWAL_CHECK_MS = 5_000;

/**
 * Reads the pair `<prefix>_TLS_CERT_FILE` / `<prefix>_TLS_KEY_FILE` name, or undefined when
 * neither is set; throws naming the setting, the file and the reason (never a byte of either)
 * when a file cannot be read or the two are not a certificate and its key.
 */
export function readListenerTls(prefix: string, certFile: string | undefined, keyFile: string | undefined): ListenerTls | undefined {
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined || keyFile === undefined) throw new Error(`set both ${prefix}_TLS_CERT_FILE and ${prefix}_TLS_KEY_FILE, or neither`);
  const read = (setting: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (error) {
      throw new Error(`${prefix}_${setting}: cannot read '${file}' (${(error as NodeJS.ErrnoException).code ?? "unreadable"})`);
    }
  };
  const tls = { certFile, keyFile, cert: read("TLS_CERT_FILE", certFile), key: read("TLS_KEY_FILE", keyFile) };
  const problem = pairProblem(tls);
  if (problem) throw new Error(`${prefix}_TLS_CERT_FILE and ${prefix}_TLS_KEY_FILE: '${certFile}' and '${keyFile}' ${problem}`);
  return tls;
}

/** Why the two are not a usable certificate and key (OpenSSL's error code only: its messages are not for logs), or undefined. */
function pairProblem({ cert, key }: { cert: Buffer; key: Buffer }): string | undefined {
  try {
    createSecureContext({ cert, key });
    return undefined;
  } catch (error) {
    return `are not a certificate and its private key (${(error as NodeJS.ErrnoException).code ?? "invalid"})`;
  }
}

/**
 * fastify's server options: Node's HTTP options as they are, or, with a certificate, HTTPS with
 * the same options. fastify applies `http` to plain HTTP servers only, so over TLS the header
 * size and timeouts must travel inside `https`, or they silently fall back to Node's defaults.
 * A TLS handshake is held no longer than the headers that follow it may take (Node's default is 120 s).
 */
export function listenerTransport<H extends { headersTimeout?: number }>(http: H, tls: ListenerTls | undefined): { http: H } {
  if (!tls) return { http };
  const https = { ...http, cert: tls.cert, key: tls.key, handshakeTimeout: http.headersTimeout ?? 10_000 };
  // An https.Server serves the same requests; fastify's types name one server kind per instance.
  return { https } as unknown as { http: H };
}

/**
 * Serves a renewed certificate without a restart: when either file changes (a mounted secret
 * swapped by cert-manager, a file replaced by certbot), the pair is read again and, if it is a
 * certificate and its key, used for new connections; a half-written or mismatched pair is
 * refused and the one in use kept. Returns what stops watching.
 */
export function renewListenerTls(servers: readonly TlsServer[], tls: ListenerTls, logger: { info(message: string): void; warn(message: string): void }): () => void {
  type Pair = { cert: Buffer; key: Buffer };
  const same = (a: Pair, b: Pair | undefined) => b !== undefined && a.cert.equals(b.cert) && a.key.equals(b.key);
  let current: Pair = tls;
  // A pair refused once is not reported again when its other file's watcher sees the same change.
  let refused: Pair | undefined;
  const check = () => {
    let pair: Pair;
    try {
      pair = { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) };
    } catch (error) {
      return logger.warn(`TLS certificate not renewed, the one in use kept: cannot read '${tls.certFile}' or '${tls.keyFile}' (${(error as NodeJS.ErrnoException).code ?? "unreadable"})`);
    }
    if (same(pair, current) || same(pair, refused)) return;
    const problem = pairProblem(pair);
    if (problem) {
      refused = pair;
      return logger.warn(`TLS certificate not renewed, the one in use kept: '${tls.certFile}' and '${tls.keyFile}' ${problem}`);
    }
    for (const server of servers) server.setSecureContext(pair);
    current = pair;
    logger.info(`TLS certificate renewed from '${tls.certFile}'`);
  };
  watchFile(tls.certFile, { interval: RENEWAL_CHECK_MS, persistent: false }, check);
  watchFile(tls.keyFile, { interval: RENEWAL_CHECK_MS, persistent: false }, check);
  return () => {
    unwatchFile(tls.certFile, check);
    unwatchFile(tls.keyFile, check);
  };
}
