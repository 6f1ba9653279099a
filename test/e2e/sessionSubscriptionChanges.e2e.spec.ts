import type { NatsServer } from "@manifold/nats-server";
import { jetstreamManager } from "@nats-io/jetstream";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { connectWithKey } from "../helpers/mcp.js";
import { rawSession } from "../helpers/itemStreams.js";
import { connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
/** The heap of this process, which runs the stack's gateway, after collecting garbage. */
const heapMiB = () => (gc(), gc(), process.memoryUsage().heapUsed / 2 ** 20);

// attack (helper-150): what a 2025 session keeps for its life is bounded by size (an initialize of at
// most 16 KiB: sessionLimits.e2e), but its resource subscriptions only by count: 100 URIs of up to
// 4,096 characters each, ~400 KB kept in the gateway's heap and in the session directory's record,
// for each of a consumer's 1,000 sessions on a replica, and rewritten whole to the directory at each
// subscribe or unsubscribe. Measured below for 20 sessions of one consumer. (A consumer toggling one
// subscription on 4 such sessions wrote ~22 MB a second to the directory, 54 toggles a second, and
// another tenant's median call went from 3.3 to 39.5 ms; the same toggles on short URIs: 16.4 ms.)

// attack (helper-150): a 2025 session's `resources/subscribe`, `resources/unsubscribe` and
// `logging/setLevel` each rewrite the session's record in the directory, decided on its last
// revision. Sent at once (a client's Promise.all of subscriptions, a 2025-03-26 batch), they raced
// each other on one replica: each lost race read and decided again, and past 5 the request failed
// as `bus_unavailable` ("the session's record kept changing"), a 503-class error that names the bus,
// which was fine; its upstream subscription was made, and never recorded (measured below).

const FIXTURE = new URL("../fixtures/slowItemsUpstream.mjs", import.meta.url).pathname;
const SESSIONS = 20;
let nats: NatsServer;
let stack: Stack;
let child: ChildProcess;
let keys: Record<string, string> = {};
const url = () => stack.mcpUrl("docs");

beforeAll(async () => {
  nats = await startNats();
  // A budget the attacker's 2,000 subscriptions never exhaust: what a session keeps is what is tested.
  stack = await startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_MAX_REQUESTS_PER_S_PER_PRINCIPAL: "1000000" });
  child = spawn(process.execPath, [FIXTURE], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, TEMPLATES: "1" } });
  const [first] = await once(child.stdout!, "data");
  await registerUpstreams(stack, { name: "docs", transport: { type: "streamable-http", url: String(first).trim() } });
  const created = await stack.admin.post("/v1/virtual-servers", { name: "docs", tools: [{ upstream: "docs", tool: "echo" }], resources: [{ upstream: "docs", uriTemplate: "att://t/{id}" }] });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  keys = await grantedConsumers(stack, "docs", ["mallory", "alice", "bob"]);
}, 60_000);

afterAll(async () => {
  child?.kill();
  await stack?.close();
  await nats?.stop();
});

describe("a 2025 session's resource subscriptions are bounded by size as well as count", () => {
  test(`attack: ${SESSIONS} sessions subscribing 100 URIs of 4,000 characters each keep at most 32 KiB of URIs each`, async () => {
    const nc = await connectAs(nats, "operator", "probe");
    const jsm = await jetstreamManager(nc);
    const kvBytes = async () => (await jsm.streams.info("KV_manifold-sessions")).state.bytes;
    try {
      const sessions = await Promise.all(Array.from({ length: SESSIONS }, () => rawSession(url(), keys.mallory!)));
      const heapBefore = heapMiB();
      const kvBefore = await kvBytes();
      const long = "x".repeat(4_000);
      const outcomes = await Promise.all(
        sessions.map(async (send, s) => {
          const codes: string[] = [];
          for (let i = 0; i < 100; i++) {
            const answer = await send("resources/subscribe", { uri: `docs+att://t/${long}${s}-${i}` });
            codes.push(answer.error ? answer.error.data?.code : "ok");
          }
          return codes;
        }),
      );
      const kept = outcomes.flat().filter((c) => c === "ok").length;
      const refused = outcomes.flat().filter((c) => c === "too_many_subscriptions").length;
      const heap = heapMiB() - heapBefore;
      const kv = ((await kvBytes()) - kvBefore) / 2 ** 20;
      const figures = `${SESSIONS} sessions × 100 subscriptions of 4 KB URIs: ${kept} kept, ${refused} refused; gateway heap +${heap.toFixed(1)} MiB, session directory +${kv.toFixed(1)} MiB`;
      // Measured before the fix: all 2,000 kept, heap +28.7 MiB, session directory +7.7 MiB (~385 KB
      // a session, for each of 1,000 sessions a replica). After: 160 kept, heap +5.6-6.0 MiB (this
      // process also runs the test's 2,000 requests), directory +0.6 MiB.
      expect(kept, figures).toBe(SESSIONS * 8);
      expect(refused, figures).toBe(SESSIONS * 92);
      expect(kv, figures).toBeLessThan(2);
      expect(heap, figures).toBeLessThan(12);
      // Within the bound a session still subscribes: a short URI fits beside the long ones.
      expect((await sessions[0]!("resources/subscribe", { uri: "docs+att://t/short" })).result, figures).toEqual({});
    } finally {
      await nc.close();
    }
  }, 120_000);
});

describe("a 2025 session's changes sent at once are applied one at a time", () => {
  test("a real client's 12 subscriptions and a log level sent at once are all applied", async () => {
    await using client = await connectWithKey(url(), keys.alice!);
    const outcomes = await Promise.allSettled([
      ...Array.from({ length: 12 }, (_, i) => client.subscribeResource({ uri: `docs+att://t/${i}` })),
      client.setLoggingLevel("debug"),
    ]);
    const failed = outcomes.flatMap((o) => (o.status === "rejected" ? [String((o.reason as Error).message).slice(0, 120)] : []));
    // Measured before the fix: 4 of 13 failed with bus_unavailable ("the session's record kept changing under 5 attempts").
    expect(failed, `${failed.length} of 13 failed: ${JSON.stringify(failed.slice(0, 2))}`).toEqual([]);
    // Each is recorded: subscribing again changes nothing, and the cap counts all 12.
    expect(await client.subscribeResource({ uri: "docs+att://t/0" })).toEqual({});
  }, 60_000);

  test("a 2025-03-26 batch of 30 subscriptions and level changes is answered without an error", async () => {
    const send = await rawSession(url(), keys.bob!, "2025-03-26");
    const batch = Array.from({ length: 30 }, (_, i) =>
      i % 3 === 2 ? { jsonrpc: "2.0", id: 100 + i, method: "logging/setLevel", params: { level: i % 2 ? "debug" : "info" } } : { jsonrpc: "2.0", id: 100 + i, method: "resources/subscribe", params: { uri: `docs+att://t/b${i}` } },
    );
    const res = await fetch(url(), {
      method: "POST",
      headers: send.headers,
      body: JSON.stringify(batch),
    });
    const answers = (await res.text()).split("\n").filter((l) => l.startsWith("data:")).map((l) => JSON.parse(l.slice(5)) as { error?: { data?: { code?: string } } });
    const errors = answers.filter((a) => a.error).map((a) => a.error!.data?.code);
    // Measured before the fix: 16 of 30 answered bus_unavailable.
    expect({ answered: answers.length, errors }).toEqual({ answered: 30, errors: [] });
  }, 60_000);
});
