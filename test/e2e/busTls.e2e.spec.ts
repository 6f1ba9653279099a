import { connectBus } from "@manifold/bus";
import type { NatsServer } from "@manifold/nats-server";
import { createLogger } from "@manifold/telemetry";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { makeCertificates, type TestCertificates } from "../helpers/certificates.js";
import { connectHttp } from "../helpers/mcp.js";
import { busEnv, startNats, startStack, type Stack } from "../helpers/stack.js";

describe("the bus over TLS, clients verified by certificate as well as by nkey", () => {
  let dir: string;
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let certs: TestCertificates;
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
