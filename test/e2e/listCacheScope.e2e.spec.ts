import type { NatsServer } from "@manifold/nats-server";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startMutableUpstream, type MutableUpstream } from "../fixtures/mutableUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const note: Tool = { name: "note", description: "Takes a note", inputSchema: { type: "object" } };
const other: Tool = { name: "other", description: "Another tool", inputSchema: { type: "object" } };

/** A 2026-07-28 tools/list, with a key or without credentials: its HTTP status and `cacheScope`. */
async function scopeOf(url: string, key?: string): Promise<string> {
  const answer = await modernRequest(url, key, "tools/list", {}, {});
  return `${answer.status} ${answer.result?.cacheScope ?? "no list"}`;
}

// "public": "Any client, shared gateway, or caching proxy MAY store and serve the cached response to
// any user" (2026-07-28 server/utilities/caching). A tools/list is only the granted callers' (others
// get unknown_virtual_server), so it is public only where it is served to callers without
// credentials alike: GATEWAY_AUTH=off, or an anonymous grant that GATEWAY_ALLOW_ANONYMOUS lets in.
// Before (helper-182), a list no grant cut was public wherever only granted callers could read it.
describe.each(["on", "off"] as const)("the cacheScope of a 2026-07-28 tools/list (fast path %s)", (fastPath) => {
  let nats: NatsServer;
  let stack: Stack;
  let upstream: MutableUpstream;
  let keys: Record<string, string>;

  beforeAll(async () => {
    nats = await startNats();
    [stack, upstream] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_ALLOW_ANONYMOUS: "true", GATEWAY_FAST_PATH: fastPath }), startMutableUpstream([note, other])]);
    await registerUpstreams(stack, { name: "u", transport: { type: "streamable-http", url: upstream.url } });
    const tools = [{ upstream: "u", tool: "note" }, { upstream: "u", tool: "other" }];
    for (const name of ["granted", "anonymous", "cut"]) {
      await createVirtualServer(stack, name, tools);
      keys = await grantedConsumers(stack, name, ["alice"]).then((k) => ({ ...keys, ...k }));
    }
    for (const name of ["anonymous", "cut"]) {
      expect((await stack.admin.post(`/v1/virtual-servers/${name}/grants`, { grantId: "anyone", subject: { anonymous: true } })).status).toBe(201);
    }
    expect((await stack.admin.post("/v1/consumers", { name: "carol" })).status).toBe(201);
    expect((await stack.admin.post("/v1/virtual-servers/cut/grants", { grantId: "carol", subject: { consumer: "carol" }, deniedTools: [{ upstream: "u", tool: "other" }] })).status).toBe(201);
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await upstream?.close();
    await nats?.stop();
  });

  test("private where only granted callers read it, public where it is everyone's alike", async () => {
    const alice = keys.alice!;
    const seen = {
      "granted, alice": await scopeOf(stack.mcpUrl("granted"), alice),
      "granted, no credentials": await scopeOf(stack.mcpUrl("granted")),
      "anonymous grant, alice": await scopeOf(stack.mcpUrl("anonymous"), alice),
      "anonymous grant, no credentials": await scopeOf(stack.mcpUrl("anonymous")),
      "anonymous grant and one that cuts the list, no credentials": await scopeOf(stack.mcpUrl("cut")),
    };
    expect(seen).toEqual({
      "granted, alice": "200 private",
      "granted, no credentials": "401 no list",
      "anonymous grant, alice": "200 public",
      "anonymous grant, no credentials": "200 public",
      "anonymous grant and one that cuts the list, no credentials": "200 private",
    });
  }, 60_000);
});

test("a gateway open to every caller (GATEWAY_AUTH=off) answers public", async () => {
  const nats = await startNats();
  const [stack, upstream] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "off" }), startMutableUpstream([note])]);
  try {
    await registerUpstreams(stack, { name: "u", transport: { type: "streamable-http", url: upstream.url } });
    await createVirtualServer(stack, "v", [{ upstream: "u", tool: "note" }]);
    expect(await scopeOf(stack.mcpUrl("v"))).toBe("200 public");
  } finally {
    await stack.close();
    await upstream.close();
    await nats.stop();
  }
}, 60_000);
