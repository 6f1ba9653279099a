import type { NatsServer } from "@manifold/nats-server";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startAuthorizationServer, type AuthorizationServerFixture } from "../fixtures/authorizationServer.js";
import { startIdentityProvider, type IdentityFixture } from "../fixtures/jwks.js";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { startWireTap, type WireTap } from "../fixtures/wireTap.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { signIn } from "../helpers/oauthClient.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { spawnEverything, type SpawnedUpstream } from "../helpers/upstreams.js";

const STDIO_FIXTURE = new URL("../fixtures/stdio-upstream.mjs", import.meta.url).pathname;

/**
 * The MCP authorization specification's MUST NOT: the token an agent presents to Manifold is
 * never passed to an upstream. Every auth mode (API key, identity-provider JWT, OAuth sign-in)
 * with both client generations calls through every upstream transport (stdio, Streamable HTTP,
 * SSE); what each upstream received is recorded below the MCP layer (every byte on the wire or
 * on stdin, plus a stdio server's arguments and environment), and no token, nor any part of one
 * (a JWT's signature), is in it.
 */
describe("the inbound token never reaches an upstream", () => {
  let nats: NatsServer;
  let stack: Stack;
  let as: AuthorizationServerFixture;
  let idp: IdentityFixture;
  let recording: RecordingUpstream;
  let sse: SpawnedUpstream;
  let httpTap: WireTap;
  let sseTap: WireTap;
  let dir: string;
  let names: Record<string, string>;
  const tokens = new Map<string, string>();

  beforeAll(async () => {
    nats = await startNats();
    dir = await mkdtemp(join(tmpdir(), "manifold-stdin-tap-"));
    [stack, as, idp, recording, sse] = await Promise.all([
      startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_OAUTH_SCOPES: "mcp" }),
      startAuthorizationServer(),
      startIdentityProvider(),
      startRecordingUpstream(),
      spawnEverything("sse"),
    ]);
    [httpTap, sseTap] = await Promise.all([startWireTap(recording.url), startWireTap(sse.url)]);
    await registerUpstreams(
      stack,
      { name: "http", transport: { type: "streamable-http", url: httpTap.url } },
      { name: "sse", transport: { type: "sse", url: sseTap.url } },
      { name: "stdio", transport: { type: "stdio", command: process.execPath, args: [STDIO_FIXTURE], env: { STDIN_TAP: join(dir, "stdin") } } },
    );
    names = await createVirtualServer(stack, "tap", [
      { upstream: "http", tool: "echo" },
      { upstream: "sse", tool: "echo" },
      { upstream: "stdio", tool: "echo" },
    ]);
    const ok = async (p: Promise<{ status: number; body: unknown }>) => expect((await p).status).toBeLessThan(300);
    await ok(stack.admin.post("/v1/identity-providers", { name: "corp", issuer: idp.issuer, audience: "manifold", jwksUrl: idp.jwksUrl }));
    await ok(stack.admin.post("/v1/identity-providers", { name: "signin", issuer: as.issuer, jwksUrl: as.jwksUrl, authorizationServer: true }));
    await ok(stack.admin.post("/v1/consumers", { name: "alice", identityProviders: ["corp", "signin"] }));
    await ok(stack.admin.post("/v1/virtual-servers/tap/grants", { grantId: "alice", subject: { consumer: "alice" } }));
    tokens.set("API key", ((await stack.admin.post("/v1/consumers/alice/keys", {})).body as { key: string }).key);
    tokens.set("JWT", await idp.sign({ sub: "alice" }));
    tokens.set("OAuth", (await signIn(as, "alice", stack.mcpUrl("tap"))).tokens()!.access_token);
  });

  afterAll(async () => {
    await stack?.close();
    await Promise.all([as?.close(), idp?.close(), recording?.close(), sse?.stop(), httpTap?.close(), sseTap?.close()]);
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const connect = async (era: "2025" | "2026-07-28", token: string) => {
    const url = new URL(stack.mcpUrl("tap"));
    const requestInit = { headers: { authorization: `Bearer ${token}` } };
    if (era === "2025") {
      const client = new Client({ name: "agent", version: "1" });
      await client.connect(new StreamableHTTPClientTransport(url, { requestInit }));
      return client;
    }
    const client = new ModernClient({ name: "agent", version: "1" }, { versionNegotiation: { mode: { pin: "2026-07-28" } } });
    await client.connect(new ModernTransport(url, { requestInit }));
    return client;
  };

  for (const mode of ["API key", "JWT", "OAuth"]) {
    for (const era of ["2025", "2026-07-28"] as const) {
      test(`${mode}, ${era} client: calls through stdio, Streamable HTTP and SSE carry no trace of the token`, async () => {
        const token = tokens.get(mode)!;
        const client = await connect(era, token);
        for (const upstream of ["http", "sse", "stdio"]) {
          const result = await client.callTool({ name: names[`${upstream}/echo`]!, arguments: { message: `${mode} ${era} via ${upstream}` } });
          expect(JSON.stringify(result)).toContain(`${mode} ${era} via ${upstream}`);
        }
        await client.close();
        const received = { http: httpTap.sent(), sse: sseTap.sent(), stdio: await readFile(join(dir, "stdin"), "latin1") };
        // The wire taps really record what the upstream got: the call's own argument is in each.
        for (const [upstream, bytes] of Object.entries(received)) expect(bytes, upstream).toContain(`${mode} ${era} via ${upstream}`);
        const fragments = [token, ...token.split(".").filter((part) => part.length >= 16)];
        for (const [upstream, bytes] of Object.entries(received)) {
          for (const fragment of fragments) expect(bytes.includes(fragment), `${upstream} received part of the ${mode} token`).toBe(false);
        }
      });
    }
  }
});
