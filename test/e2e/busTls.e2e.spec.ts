import { connectBus } from "@manifold/bus";
import type { NatsServer } from "@manifold/nats-server";
import { createLogger } from "@manifold/telemetry";
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp } from "../helpers/mcp.js";
import { busEnv, startNats, startStack, type Stack } from "../helpers/stack.js";

/** A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, made with the openssl CLI. */
async function makeCertificates(dir: string) {
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const key = (name: string) => openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", `${name}.key`);
  key("ca");
  openssl("req", "-x509", "-new", "-key", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=manifold-test-ca");
  for (const [name, ext] of [
    ["server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"],
    ["client", "extendedKeyUsage=clientAuth\n"],
  ] as const) {
    key(name);
    openssl("req", "-new", "-key", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=manifold-${name}`);
    await writeFile(join(dir, `${name}.ext`), ext);
    openssl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${name}.crt`, "-days", "1", "-extfile", `${name}.ext`);
  }
  const file = (name: string) => join(dir, name);
  return { ca: file("ca.crt"), serverCert: file("server.crt"), serverKey: file("server.key"), clientCert: file("client.crt"), clientKey: file("client.key") };
}

describe("the bus over TLS, clients verified by certificate as well as by nkey", () => {
  let dir: string;
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let certs: Awaited<ReturnType<typeof makeCertificates>>;
  const logger = createLogger({ component: "tls-test", level: "silent" });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "manifold-tls-"));
    certs = await makeCertificates(dir);
    nats = await startNats({ tls: { certFile: certs.serverCert, keyFile: certs.serverKey, caFile: certs.ca, verify: true } });
    const clientCert = { NATS_TLS_CERT_FILE: certs.clientCert, NATS_TLS_KEY_FILE: certs.clientKey };
    [stack, recording] = await Promise.all([startStack(nats, clientCert), startRecordingUpstream()]);
  });

  afterAll(async () => {
    await stack?.close();
    await recording?.close();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("every service connects over TLS with its own nkey, and a call works end to end", async () => {
    expect(busEnv(nats, "gateway").NATS_TLS_CA_FILE).toBe(certs.ca);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
    const names = await createVirtualServer(stack, "over-tls", [{ upstream: "rec", tool: "echo" }]);
    await using agent = await connectHttp(stack.mcpUrl("over-tls"));
    const result = await agent.callTool({ name: names["rec/echo"]!, arguments: { message: "encrypted" } });
    expect(result.content).toEqual([{ type: "text", text: "echo: encrypted" }]);
  });

  test("a client that does not trust the CA, or has no client certificate, never gets a connection", async () => {
    const seedFile = nats.credentials.gateway!.seedFile;
    // Without the CA nats.js still upgrades (the server requires TLS) and then cannot trust the server.
    await expect(connectBus({ url: nats.url, name: "plain", logger, role: "gateway", seedFile })).rejects.toThrow(/certificate/i);
    await expect(connectBus({ url: nats.url, name: "no-client-cert", logger, role: "gateway", seedFile, tls: { caFile: certs.ca } })).rejects.toThrow();
  });
});
