import type { NatsServer } from "@manifold/nats-server";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { eventually } from "../helpers/mcp.js";
import { declaring, modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Attack: what a consumer already has open when the admin deletes it. Every new request is
 * refused at once (401), but nothing ends what is open: a 2025 session's GET stream and a
 * 2026-07-28 `subscriptions/listen` stream keep hearing the virtual server's notifications, and a
 * call already running keeps relaying progress and delivers its result. Safe behaviour: deleting
 * the consumer (or revoking its last grant) ends its streams and cancels its calls within
 * milliseconds, as "take effect everywhere within milliseconds" promises.
 */
describe("what a deleted consumer keeps open", () => {
  let nats: NatsServer;
  let stack: Stack;
  let rec: RecordingUpstream;
  let names: Record<string, string>;
  const keys: Record<string, string> = {};
  let url: string;
  let changes = 0;
  const changeList = async () => {
    const res = await stack.admin.request("PUT", "/v1/virtual-servers/ops", { description: `change ${++changes}` });
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
  };
  /**
   * Waits until the stream has heard every change made so far: a notification of a change made
   * before the deletion, still on its way when the DELETE returned, is not one the deletion let through.
   */
  const quiet = async (heard: readonly number[]) => {
    for (let seen = -1; seen !== heard.length; ) {
      seen = heard.length;
      await sleep(400);
    }
  };
  /**
   * Deletes the consumer; resolves with when the gateway first refused its key (control: for every
   * new request), which is when the gateway has heard of the deletion: the registry answers once its
   * own projection holds it, and on a loaded machine the gateway's follower was once more than
   * 50 ms behind, counted as progress "after the deletion".
   */
  const deleteConsumer = async (name: string) => {
    expect((await stack.admin.request("DELETE", `/v1/consumers/${name}`)).status).toBe(204);
    return eventually(async () => ((await modernRequest(url, keys[name]!, "tools/list", {}, declaring({}, false))).status === 401 ? Date.now() : undefined), 2_000);
  };

  beforeAll(async () => {
    nats = await startNats();
    [stack, rec] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required" }), startRecordingUpstream("rec")]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: rec.url } });
    names = await createVirtualServer(stack, "ops", [
      { upstream: "rec", tool: "slow" },
      { upstream: "rec", tool: "echo" },
    ]);
    url = stack.mcpUrl("ops");
    Object.assign(keys, await grantedConsumers(stack, "ops", ["gone25", "gone26", "slow25", "slow26"]));
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await rec?.close();
    await nats?.stop();
  });

  test("2025 session: its GET stream hears nothing once its consumer is deleted", async () => {
    const agent = new Client({ name: "gone25", version: "1" });
    const heard: number[] = [];
    agent.setNotificationHandler(ToolListChangedNotificationSchema, () => void heard.push(Date.now()));
    await agent.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${keys.gone25}` } } }));
    try {
      // The GET stream is open and hears changes.
      await eventually(async () => (await changeList(), heard.length > 0 ? true : undefined), 5_000, 200);
      await quiet(heard);
      const deletedAt = await deleteConsumer("gone25");
      for (let i = 0; i < 5; i++) {
        await changeList();
        await sleep(500);
      }
      const after = heard.filter((t) => t > deletedAt);
      expect(
        after.length,
        `the deleted consumer's 2025 GET stream heard ${after.length} tools/list_changed, the last ${after.length ? after.at(-1)! - deletedAt : 0} ms after the deletion`,
      ).toBe(0);
    } finally {
      await agent.close();
    }
  }, 30_000);

  test("2026-07-28 listen stream: it hears nothing once its consumer is deleted", async () => {
    const agent = new ModernClient({ name: "gone26", version: "1" }, { versionNegotiation: { mode: { pin: "2026-07-28" } } } as never);
    await agent.connect(new ModernTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${keys.gone26}` } } }));
    const heard: number[] = [];
    agent.setNotificationHandler("notifications/tools/list_changed", () => void heard.push(Date.now()));
    const subscription = await agent.listen({ toolsListChanged: true });
    try {
      await eventually(async () => (await changeList(), heard.length > 0 ? true : undefined), 5_000, 200);
      await quiet(heard);
      const deletedAt = await deleteConsumer("gone26");
      for (let i = 0; i < 5; i++) {
        await changeList();
        await sleep(500);
      }
      const after = heard.filter((t) => t > deletedAt);
      expect(
        after.length,
        `the deleted consumer's 2026-07-28 listen stream heard ${after.length} tools/list_changed, the last ${after.length ? after.at(-1)! - deletedAt : 0} ms after the deletion`,
      ).toBe(0);
    } finally {
      await subscription.close().catch(() => undefined);
      await agent.close();
    }
  }, 30_000);

  test("2025 call in flight: no progress and no result reach a consumer deleted mid-call, and the upstream call is cancelled", async () => {
    const agent = new Client({ name: "slow25", version: "1" });
    await agent.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${keys.slow25}` } } }));
    const progress: number[] = [];
    let deletedAt = Number.POSITIVE_INFINITY;
    let deleting: Promise<void> | undefined;
    try {
      const outcome = await agent
        .callTool({ name: names["rec/slow"]!, arguments: { ms: 3_000, steps: 6, tag: "slow25" } }, undefined, {
          timeout: 20_000,
          onprogress: () => {
            progress.push(Date.now());
            deleting ??= deleteConsumer("slow25").then((at) => void (deletedAt = at));
          },
        })
        .then(
          (r) => `result ${JSON.stringify(r.content)} at +${Date.now() - deletedAt} ms`,
          (e: { message: string }) => `refused: ${e.message}`,
        );
      await deleting;
      // The upstream hears of the cancellation after the agent's answer: given a moment.
      await eventually(() => (rec.cancelled.includes("slow25") ? true : undefined), 5_000).catch(() => undefined);
      const after = progress.filter((t) => t > deletedAt + 50).length;
      expect(
        { progressAfterDeletion: after, result: outcome.startsWith("result"), upstreamCancelled: rec.cancelled.includes("slow25") },
        `a 2025 call of a deleted consumer went on: ${after} progress notifications after the deletion, ${outcome}; upstream cancelled: ${rec.cancelled.includes("slow25")}`,
      ).toEqual({ progressAfterDeletion: 0, result: false, upstreamCancelled: true });
    } finally {
      await agent.close();
    }
  }, 30_000);

  test("2026-07-28 call in flight: no progress and no result reach a consumer deleted mid-call", async () => {
    const started = Date.now();
    const answer = modernRequest(url, keys.slow26!, "tools/call", { name: names["rec/slow"], arguments: { ms: 3_000, steps: 6, tag: "slow26" }, _meta: { progressToken: "p" } }, declaring({}, false));
    await eventually(() => (rec.calls.some((c) => (c.arguments as { tag?: string }).tag === "slow26") ? true : undefined), 5_000);
    await sleep(600);
    const deletedAt = await deleteConsumer("slow26");
    const done = await answer;
    // The upstream hears of the cancellation after the agent's answer: given a moment.
    await eventually(() => (rec.cancelled.includes("slow26") ? true : undefined), 5_000).catch(() => undefined);
    const progress = done.messages.filter((m) => m.method === "notifications/progress").length;
    expect(
      { result: done.result !== undefined, upstreamCancelled: rec.cancelled.includes("slow26") },
      `a 2026-07-28 call of a consumer deleted ${deletedAt - started} ms in delivered ${progress} progress notifications in all and ${done.result ? `its result ${JSON.stringify(done.result.content)} ${Date.now() - deletedAt} ms after the deletion` : JSON.stringify(done.error)}`,
    ).toEqual({ result: false, upstreamCancelled: true });
  }, 30_000);
});
