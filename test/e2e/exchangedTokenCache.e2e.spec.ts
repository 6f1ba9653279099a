import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { signIn, type InMemoryOAuthClient } from "../helpers/oauthClient.js";
import { startTokenExchangeStack, type TokenExchangeStack } from "../helpers/tokenExchangeStack.js";

/** The gateway keeps this many exchanged tokens: each caller at most a sixteenth of them (2). */
const KEPT = 32;
/** More fresh tokens than the whole cache holds: before, reaching its limit cleared it for every caller. */
const FLOOD = KEPT + 8;

/**
 * The tokens a gateway exchanged for upstreams (RFC 8693) are kept per agent token, each owned by
 * the caller it was exchanged for (`services/gateway/src/fairCache.ts`). The attack: one signed-in
 * user calls with a fresh token each time (a new sign-in, or a refresh, per request), so every
 * call is a new exchange and a new entry. Before, the cache was cleared whole once full, and every
 * other user's next call paid a new exchange at the identity provider; now the flood churns only
 * the flooder's own share.
 */
describe("the exchanged-token cache under one user's flood of fresh tokens", () => {
  let fixture: TokenExchangeStack;

  beforeAll(async () => {
    fixture = await startTokenExchangeStack(["alice", "mallory"], { GATEWAY_EXCHANGED_TOKENS_KEPT: String(KEPT) });
  });
  afterAll(async () => {
    await fixture?.close();
  });

  const connect = async (oauth: InMemoryOAuthClient) => {
    const client = new Client({ name: "desktop", version: "1" });
    await client.connect(new StreamableHTTPClientTransport(new URL(fixture.stack.mcpUrl("exchange")), { authProvider: oauth }));
    return client;
  };
  const exchangesFor = (sub: string) => fixture.as.exchanges.filter((e) => e.sub === sub).length;

  test("attack: another user's fresh tokens, more than the cache holds, do not evict a user's exchanged token", async () => {
    const { as, stack, upstream, tool } = fixture;
    const alice = await connect(await signIn(as, "alice", stack.mcpUrl("exchange")));
    try {
      expect(await alice.callTool({ name: tool, arguments: {} })).toMatchObject({ content: [{ text: "acting for alice" }] });
      expect(exchangesFor("alice")).toBe(1);

      const started = Date.now();
      for (let i = 0; i < FLOOD; i++) {
        const mallory = await connect(await signIn(as, "mallory", stack.mcpUrl("exchange")));
        try {
          expect(await mallory.callTool({ name: tool, arguments: {} })).toMatchObject({ content: [{ text: "acting for mallory" }] });
        } finally {
          await mallory.close();
        }
      }
      // Every fresh token was exchanged and kept: the flood did reach the cache, past its size.
      expect(exchangesFor("mallory"), `flood of ${FLOOD} took ${Date.now() - started} ms`).toBe(FLOOD);

      expect(await alice.callTool({ name: tool, arguments: {} })).toMatchObject({ content: [{ text: "acting for alice" }] });
      // Alice's token was still cached: no second exchange, and the upstream saw the same token twice.
      expect(exchangesFor("alice")).toBe(1);
      const aliceTokens = upstream.calls.filter((c) => c.sub === "alice").map((c) => c.jti);
      expect(aliceTokens).toHaveLength(2);
      expect(new Set(aliceTokens).size).toBe(1);
    } finally {
      await alice.close();
    }
  }, 60_000);
});
