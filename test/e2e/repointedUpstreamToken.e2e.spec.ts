import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { setTimeout } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startOAuthUpstream } from "../fixtures/oauthUpstream.js";
import { rpcError } from "../helpers/catalog.js";
import { eventually } from "../helpers/mcp.js";
import { signIn } from "../helpers/oauthClient.js";
import { exchangeAuth, startTokenExchangeStack, type TokenExchangeStack } from "../helpers/tokenExchangeStack.js";

/** While set, the identity provider holds each token request this long: an exchange in flight. */
let holdTokenMs = 0;

/**
 * The attack: the gateway picks a caller's upstream token for the upstream's address as it sees it
 * (here an exchange for server A, slow), and an admin re-points the upstream at server B meanwhile.
 * The connector, already on B, sent B the token obtained for A: a credential handed to the wrong
 * party, which B could replay at A as the user. The same holds for a gateway replica whose
 * projection lags the connector's.
 */
describe("a caller's upstream token never reaches an address it was not obtained for", () => {
  let fixture: TokenExchangeStack;

  beforeAll(async () => {
    fixture = await startTokenExchangeStack(["alice"], {}, { delayMs: (method, path) => (method === "POST" && path.startsWith("/token") ? holdTokenMs : 0) });
  });

  afterAll(async () => {
    holdTokenMs = 0;
    await fixture?.close();
  });

  test("attack: re-pointed while the token for the old address is being obtained: the call fails, the new server never sees it, a retry works", async () => {
    const { stack, as, upstream, tool } = fixture;
    const other = await startOAuthUpstream(as.issuer, as.jwksUrl);
    try {
      const oauth = await signIn(as, "alice", stack.mcpUrl("exchange"));
      const client = new Client({ name: "desktop", version: "1" });
      await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("exchange")), { authProvider: oauth }));
      holdTokenMs = 3_000;
      const inFlight = rpcError(client.callTool({ name: tool, arguments: {} }));
      // The gateway has read the upstream's address (A) and waits for the exchange.
      await setTimeout(500);
      const moved = await stack.admin.request("PUT", "/v1/upstreams/reports", {
        transport: { type: "streamable-http", url: other.url, auth: exchangeAuth(as.issuer) },
      });
      expect(moved.status, JSON.stringify(moved.body)).toBe(200);
      // The connector is on B once B hears from it (its discovery).
      await eventually(() => (other.requests.length > 0 ? true : undefined), 5_000);
      holdTokenMs = 0;
      const refusal = await inFlight;
      expect(as.exchanges[0]).toEqual({ client: "manifold", sub: "alice", resource: upstream.url });
      // Nothing obtained for A ever reached B.
      expect(other.requests.filter((r) => r.aud !== undefined && r.aud !== other.url)).toEqual([]);
      // Before: B was sent the token for A (on a session of its own for alice, then the call).
      expect(refusal.data).toMatchObject({ code: "upstream_unavailable", reason: "upstream_moved" });
      expect(refusal.message).toContain("re-pointed");
      expect(other.calls).toEqual([]);
      // The agent retries: the gateway now picks a token for B.
      await eventually(async () => ((await client.callTool({ name: tool, arguments: {} })).isError ? undefined : true), 10_000);
      await client.close();
      expect(other.calls.length).toBeGreaterThan(0);
      expect(as.exchanges.at(-1)).toEqual({ client: "manifold", sub: "alice", resource: other.url });
    } finally {
      holdTokenMs = 0;
      await other.close();
    }
  });
});
