import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { listenerTransport, readListenerTls } from "./listenerTls.js";

const dir = mkdtempSync(join(tmpdir(), "manifold-listener-tls-unit-"));
const pair = (name: string) => {
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.crt`, "-days", "1", "-subj", `/CN=${name}`], { cwd: dir, stdio: "pipe" });
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
};
const [a, b] = [pair("a"), pair("b")];

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("readListenerTls", () => {
  test("neither file: plain HTTP; both: the pair as read", () => {
    expect(readListenerTls("GATEWAY", undefined, undefined)).toBeUndefined();
    const tls = readListenerTls("GATEWAY", a.cert, a.key)!;
    expect(tls.cert.toString()).toContain("BEGIN CERTIFICATE");
    expect(tls).toMatchObject({ certFile: a.cert, keyFile: a.key });
  });

  test("a missing file, one of the two, or a certificate with another's key stop the service, naming the setting and the file, never their contents", () => {
    const refusals = [
      () => readListenerTls("GATEWAY", a.cert, undefined),
      () => readListenerTls("GATEWAY", join(dir, "absent.crt"), a.key),
      () => readListenerTls("REGISTRY", a.cert, b.key),
    ].map((read) => {
      try {
        read();
      } catch (error) {
        return (error as Error).message;
      }
      throw new Error("expected a refusal");
    });
    expect(refusals[0]).toBe("set both GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE, or neither");
    expect(refusals[1]).toBe(`GATEWAY_TLS_CERT_FILE: cannot read '${join(dir, "absent.crt")}' (ENOENT)`);
    expect(refusals[2]).toMatch(/^REGISTRY_TLS_CERT_FILE and REGISTRY_TLS_KEY_FILE: '.*a\.crt' and '.*b\.key' are not a certificate and its private key \(ERR_OSSL_/);
    for (const message of refusals) expect(message).not.toMatch(/BEGIN|PRIVATE KEY-|MII/);
  });
});

test("listenerTransport: plain HTTP keeps its options; HTTPS carries the same ones, and bounds the handshake by the headers timeout", () => {
  const http = { maxHeaderSize: 4_096, headersTimeout: 1_500, requestTimeout: 3_000 };
  expect(listenerTransport(http, undefined)).toEqual({ http });
  const tls = readListenerTls("GATEWAY", a.cert, a.key)!;
  expect(listenerTransport(http, tls)).toEqual({ https: { ...http, cert: tls.cert, key: tls.key, handshakeTimeout: 1_500 } });
});
