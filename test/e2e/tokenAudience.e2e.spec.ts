import type { NatsServer } from "@manifold/nats-server";
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startIdentityProvider, type IdentityFixture } from "../fixtures/jwks.js";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const META = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}, "io.modelcontextprotocol/clientInfo": { name: "t", version: "1" } };

/** A 2026-07-28 tools/list under the given Host (what a replaying server would send), with a bearer token. */
function listAs(url: string, host: string, token: string): Promise<{ status: number; body: string }> {
  const { hostname, port, pathname } = new URL(url);
  const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: META } });
  const headers = { host, "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-method": "tools/list", "mcp-protocol-version": "2026-07-28", authorization: `Bearer ${token}` };
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path: pathname, method: "POST", headers }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode!, body: text }));
    });
    req.once("error", reject).end(body);
  });
}

/**
 * RFC 8707: a sign-in token names the endpoint it was issued for, so another server that receives
 * users' tokens cannot replay them here. The gateway must know its own URL for that, not take the
 * caller's Host for it.
 */
for (const bind of ["127.0.0.1", "0.0.0.0"]) {
  describe(`attack: a sign-in token issued for another server is replayed here (GATEWAY_HOST=${bind}, no GATEWAY_PUBLIC_URL)`, () => {
    let nats: NatsServer;
    let stack: Stack;
    let idp: IdentityFixture;
    let recording: RecordingUpstream;

    beforeAll(async () => {
      nats = await startNats();
      [stack, idp, recording] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_HOST: bind }), startIdentityProvider(), startRecordingUpstream()]);
      await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
      await createVirtualServer(stack, "secure", [{ upstream: "rec", tool: "echo" }]);
      await stack.admin.post("/v1/identity-providers", { name: "corp", issuer: idp.issuer, jwksUrl: idp.jwksUrl, authorizationServer: true });
      await stack.admin.post("/v1/consumers", { name: "alice", identityProviders: ["corp"] });
      await stack.admin.post("/v1/virtual-servers/secure/grants", { grantId: "alice", subject: { consumer: "alice" } });
    });

    afterAll(async () => {
      await stack?.close();
      await Promise.all([idp?.close(), recording?.close()]);
      await nats?.stop();
    });

    test("a token for another host, or for another port of this one, is refused under that Host", async () => {
      const { port } = new URL(stack.gatewayUrl);
      for (const foreign of bind === "0.0.0.0" ? ["other-mcp.example", "127.0.0.1:1"] : ["localhost:1", `127.0.0.1:${Number(port) + 1}`]) {
        const token = await idp.sign({ sub: "alice" }, { audience: `http://${foreign}/mcp/secure` });
        expect((await listAs(stack.mcpUrl("secure"), foreign, token)).status, foreign).toBe(401);
      }
    });

    test(bind === "0.0.0.0" ? "serving any host, the gateway cannot name itself: sign-in tokens need GATEWAY_PUBLIC_URL" : "a token for this endpoint is accepted", async () => {
      const token = await idp.sign({ sub: "alice" }, { audience: stack.mcpUrl("secure") });
      const answer = await listAs(stack.mcpUrl("secure"), new URL(stack.gatewayUrl).host, token);
      if (bind === "0.0.0.0") {
        expect(answer.status).toBe(401);
        expect(answer.body).toContain("GATEWAY_PUBLIC_URL");
      } else expect(answer.status).toBe(200);
    });
  });
}
