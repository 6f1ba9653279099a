import type { NatsServer } from "@manifold/nats-server";
import { copyFile, mkdir, mkdtemp, rename, rm } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { connect as connectTcp, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as connectTls, type TLSSocket } from "node:tls";
import { Agent, getGlobalDispatcher, setGlobalDispatcher, type Dispatcher } from "undici";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { makeCertificates, type TestCertificates } from "../helpers/certificates.js";
import { connectHttp, eventually } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const HEADERS_TIMEOUT_MS = 1_000;
const MAX_CONNECTIONS = 8;
const MODERN_META = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "t", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };

/**
 * HTTPS on the gateway's public port and the registry's admin port (`…_TLS_CERT_FILE`,
 * `…_TLS_KEY_FILE`). Before, neither could serve TLS: agents' API keys and the admin token crossed
 * the network in clear unless a proxy was put in front (the compose file publishes the gateway on
 * every interface). Over TLS the edge's bounds must hold as over plain HTTP: fastify applies its
 * `http` options (header size, header and request timeouts) to plain HTTP servers only.
 */
describe("HTTPS on the gateway and the admin API", () => {
  let dir: string;
  let certs: TestCertificates;
  let nats: NatsServer;
  let stack: Stack;
  let upstream: RecordingUpstream;
  let live: { cert: string; key: string };
  let previous: Dispatcher;
  let tool: string;
  let slow: string;
  const logs: string[] = [];
  const gatewayPort = () => Number(new URL(stack.gatewayUrl).port);

  const portOf = (app: { server: { address(): unknown } }) => (app.server.address() as AddressInfo).port;
  /** The serial number of the certificate a new connection to the gateway (or another port) is shown. */
  const servedSerial = (port = gatewayPort()) =>
    new Promise<string>((resolve, reject) => {
      const socket = connectTls({ host: "127.0.0.1", port, ca: readFileSync(certs.ca) }, () => {
        resolve(socket.getPeerCertificate().serialNumber);
        socket.destroy();
      });
      socket.once("error", reject);
    });
  /** Replaces a live file as a mounted secret is: written beside it, then renamed over it. */
  const replace = async (from: string, to: string) => {
    await copyFile(from, `${to}.new`);
    await rename(`${to}.new`, to);
  };
  /** A TLS connection whose handshake is done, and when the gateway closed it. */
  const openTls = () =>
    new Promise<{ socket: TLSSocket; closed: Promise<number> }>((resolve, reject) => {
      const socket = connectTls({ host: "127.0.0.1", port: gatewayPort(), ca: readFileSync(certs.ca) }, () => resolve({ socket, closed }));
      const closed = new Promise<number>((done) => socket.once("close", () => done(Date.now())));
      socket.once("error", reject);
    });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "manifold-listener-tls-"));
    certs = await makeCertificates(dir);
    // The services read the certificate where a deployment mounts it: copies this test renews.
    await mkdir(join(dir, "live"));
    live = { cert: join(dir, "live", "tls.crt"), key: join(dir, "live", "tls.key") };
    await copyFile(certs.serverCert, live.cert);
    await copyFile(certs.serverKey, live.key);
    // This process's HTTP clients (the admin client, the SDK's fetch) trust the test CA.
    previous = getGlobalDispatcher();
    setGlobalDispatcher(new Agent({ connect: { ca: readFileSync(certs.ca) } }));
    [nats, upstream] = await Promise.all([startNats(), startRecordingUpstream()]);
    stack = await startStack(
      nats.url,
      {
        GATEWAY_TLS_CERT_FILE: live.cert,
        GATEWAY_TLS_KEY_FILE: live.key,
        REGISTRY_TLS_CERT_FILE: certs.serverCert,
        REGISTRY_TLS_KEY_FILE: certs.serverKey,
        CONNECTOR_TLS_CERT_FILE: certs.serverCert,
        CONNECTOR_TLS_KEY_FILE: certs.serverKey,
        GATEWAY_MAX_HEADER_BYTES: "4096",
        GATEWAY_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
        GATEWAY_REQUEST_TIMEOUT_MS: "3000",
        GATEWAY_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
      },
      { logs },
    );
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: upstream.url } });
    const names = await createVirtualServer(stack, "tls", [
      { upstream: "rec", tool: "echo" },
      { upstream: "rec", tool: "slow" },
    ]);
    tool = names["rec/echo"]!;
    slow = names["rec/slow"]!;
  });

  afterAll(async () => {
    await stack?.close();
    await upstream?.close();
    await nats?.stop();
    if (previous) setGlobalDispatcher(previous);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("agents of both eras call over HTTPS, and the admin API and the console are served over it", async () => {
    expect(stack.gatewayUrl).toMatch(/^https:/);
    expect(stack.admin.baseUrl).toMatch(/^https:/);
    const client = await connectHttp(stack.mcpUrl("tls"));
    const result = await client.callTool({ name: tool, arguments: { message: "over tls" } });
    expect(result.content).toEqual([{ type: "text", text: "echo: over tls" }]);
    await client.close();
    const modern = await fetch(stack.mcpUrl("tls"), {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": tool },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: tool, arguments: { message: "modern" }, _meta: MODERN_META } }),
    });
    expect(((await modern.json()) as { result: { content: unknown } }).result.content).toEqual([{ type: "text", text: "echo: modern" }]);
    expect((await stack.admin.get("/v1/upstreams")).status).toBe(200);
    expect((await fetch(`${stack.admin.baseUrl}/console/`)).status).toBe(200);
  });

  // Before, the metrics listeners and the connector's port were plain HTTP whatever the service's
  // own listener served: every scrape (naming each consumer, virtual server, tool and upstream) and
  // probe crossed the network in clear.
  test("the metrics listeners and the connector's port serve HTTPS with the service's certificate, and nothing over plain HTTP", async () => {
    // The stack listens on the connector's port only when a test asks for it.
    await stack.connector!.app.listen({ host: "127.0.0.1", port: 0 });
    const ports = { gateway: portOf(stack.gateway.metricsApp), registry: portOf(stack.registry.metricsApp), connector: portOf(stack.connector!.app) };
    for (const [service, port] of Object.entries(ports)) {
      const metrics = await fetch(`https://127.0.0.1:${port}/metrics`);
      expect({ service, status: metrics.status }).toEqual({ service, status: 200 });
      expect(await metrics.text()).toContain("process_cpu_seconds_total");
      const plain = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.status, (e: Error) => e.message);
      expect({ service, plain }).toEqual({ service, plain: "fetch failed" });
    }
    expect((await fetch(`https://127.0.0.1:${ports.connector}/readyz`)).status).toBe(200);
  });

  test("attack: a plain-HTTP request to the TLS port is answered nothing and closed", async () => {
    const socket = connectTcp(gatewayPort(), "127.0.0.1");
    let received = "";
    socket.setEncoding("latin1").on("data", (chunk: string) => (received += chunk));
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.on("error", () => undefined);
    socket.write(`POST /mcp/tls HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`);
    await closed;
    expect(received).not.toMatch(/^HTTP\//);
  });

  test("attack: over TLS the edge's bounds hold: header size, slow headers, a handshake never made", async () => {
    const big = await fetch(stack.mcpUrl("tls"), { method: "POST", headers: { "x-filler": "a".repeat(8_000), "content-type": "application/json" }, body: "{}" });
    // Before, Node's default (16 KiB) applied over TLS, not the setting: the request went on to the route (400).
    expect(big.status).toBe(431);
    // Headers begun and never finished: let go after the headers timeout (before: Node's default 60 s).
    const slowHeaders = await openTls();
    const started = Date.now();
    slowHeaders.socket.write("POST /mcp/tls HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    const timer = setInterval(() => slowHeaders.socket.write("X-Drip: 1\r\n"), 200);
    const closedAt = await Promise.race([slowHeaders.closed, new Promise<number>((resolve) => setTimeout(() => resolve(Number.NaN), 8_000))]);
    clearInterval(timer);
    slowHeaders.socket.destroy();
    expect(closedAt - started).toBeLessThan(HEADERS_TIMEOUT_MS + 3_000);
    // A connection that never starts its handshake: let go as soon (before: Node's default 120 s).
    const silent = connectTcp(gatewayPort(), "127.0.0.1");
    silent.on("error", () => undefined);
    const opened = Date.now();
    const silentClosedAt = await Promise.race([new Promise<number>((resolve) => silent.once("close", () => resolve(Date.now()))), new Promise<number>((resolve) => setTimeout(() => resolve(Number.NaN), 8_000))]);
    silent.destroy();
    expect(silentClosedAt - opened).toBeLessThan(HEADERS_TIMEOUT_MS + 3_000);
  });

  test("attack: at the connection bound a new TLS connection replaces an idle one, never one whose answer is under way", async () => {
    // The oldest connection carries a call in progress; the rest only completed their handshakes.
    const busy = await connectHttp(stack.mcpUrl("tls"));
    const answered = busy.callTool({ name: slow, arguments: { ms: 2_500 } });
    await eventually(() => upstream.calls.some((c) => c.tool === "slow") || undefined);
    const idle = [];
    for (let i = 0; i < MAX_CONNECTIONS; i++) idle.push(await openTls());
    // Before, every TCP connection of an HTTPS server looked idle (its HTTP state is on the TLS
    // socket): the longest open, the one carrying the call, was cut and the call failed.
    expect((await answered).content).toEqual([{ type: "text", text: "slept 2500 ms" }]);
    for (const { socket } of idle) socket.destroy();
    await busy.close();
  });

  test("a renewed certificate is served to new connections within seconds; a mismatched pair is refused, the one in use kept", async () => {
    const first = await servedSerial();
    const renewed = await certs.issueServer("renewed");
    // Half a renewal: the new certificate beside the old key.
    await replace(renewed.cert, live.cert);
    await eventually(() => logs.find((l) => l.includes("TLS certificate not renewed")), 15_000, 200);
    expect(await servedSerial()).toBe(first);
    await replace(renewed.key, live.key);
    const serial = await eventually(async () => {
      const now = await servedSerial();
      return now === first ? undefined : now;
    }, 15_000, 250);
    expect(serial).not.toBe(first);
    // One renewal for every listener of the service: its metrics port shows the new certificate too.
    expect(await servedSerial(portOf(stack.gateway.metricsApp))).toBe(serial);
    expect(logs.some((l) => l.includes("TLS certificate renewed"))).toBe(true);
    // The files are named; nothing of their contents is logged.
    for (const line of logs.filter((l) => l.includes("TLS certificate"))) {
      expect(line).toContain(live.cert);
      expect(line).not.toMatch(/BEGIN|PRIVATE|MII/);
    }
  }, 40_000);
});
