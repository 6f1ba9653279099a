import type { NatsConnection } from "@manifold/bus";
import { buildGateway, loadGatewayConfig, type Gateway } from "@manifold/gateway";
import type { NatsServer } from "@manifold/nats-server";
import { createLogger } from "@manifold/telemetry";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect, test } from "vitest";
import { busEnv, connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";
import { vaultEnv } from "../helpers/vaultStack.js";

const KEY = randomBytes(32).toString("base64");
const SECRETS = { MANIFOLD_SECRET_VAULT_K1: KEY };
const VAULT = vaultEnv();

/**
 * Every replica keeps the vault records it opened in memory and forgets one when any replica writes
 * it (the vault's change subjects). A replica reading a record while another replica removes it
 * (a user's disconnect, a refused refresh) must not keep what it read: nothing would make it
 * forget it again, and the disconnected token would go on being sent upstream from that replica.
 */
let nats: NatsServer;
let stack: Stack;
let other: Gateway & { nc: NatsConnection };

beforeAll(async () => {
  nats = await startNats();
  stack = await startStack(nats.url, VAULT, { connector: false, secretsEnv: SECRETS });
  const nc = await connectAs(nats, "gateway", "gateway-b");
  const config = loadGatewayConfig({ ...busEnv(nats, "gateway"), LOG_LEVEL: "silent", ...VAULT });
  other = Object.assign(await buildGateway({ config, logger: createLogger({ component: "gateway-b", level: "silent" }), nc, env: SECRETS }), { nc });
  await other.follower.caughtUp;
});

afterAll(async () => {
  await other?.close();
  await other?.nc.close();
  await stack?.close();
  await nats?.stop();
});

test("attack: a record removed on one replica while another reads it is not kept by the reader (a disconnected token stayed in use there)", async () => {
  const [reader, writer] = [stack.gateway.vault!, other.vault!];
  const rounds = 100;
  let kept = 0;
  for (let i = 0; i < rounds; i++) {
    await writer.put("alice", "docs", { accessToken: `at-${i}-${randomBytes(8).toString("hex")}`, issuer: "https://as.example/", resource: "https://docs.example/mcp", consumerCreated: 1, connectedAt: Date.now() });
    await new Promise((resolve) => setTimeout(resolve, 5));
    // A call on the reader looks the token up as the user disconnects on the writer.
    await Promise.all([reader.get("alice", "docs"), writer.remove("alice", "docs")]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    if ((await reader.get("alice", "docs")) !== undefined) kept++;
  }
  // Before: 50-60 % of the rounds left the removed token in the reader's memory, for good.
  expect(kept, `${kept} of ${rounds} removed records still served by the other replica`).toBe(0);
}, 60_000);
