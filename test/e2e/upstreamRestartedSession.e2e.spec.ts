import type { NatsServer } from "@manifold/nats-server";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { registerUpstreams } from "../helpers/catalog.js";
import { startEveryTransportUpstreams, type EveryTransportUpstreams } from "../helpers/everyTransportUpstreams.js";
import { connectHttp, eventually, type DisposableClient } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

/**
 * A 2025 agent's session stays open while an upstream behind its virtual server is killed and comes
 * back: the agent's session is the gateway's, not the upstream's, so once the connector has a new
 * upstream session, progress reaches the agent again, and a modern upstream's list changes (followed
 * on a `subscriptions/listen` stream, re-opened with the connection) reach it as list_changed.
 */
describe("an upstream restarted under an open 2025 agent session", () => {
  let nats: NatsServer;
  let stack: Stack;
  let agent: DisposableClient;
  let names: Record<string, string>;
  let listChanges = 0;
  let upstreams: EveryTransportUpstreams;

  beforeAll(async () => {
    nats = await startNats();
    [stack, upstreams] = await Promise.all([startStack(nats.url, { CALL_TIMEOUT_MS: "20000" }), startEveryTransportUpstreams()]);
    await registerUpstreams(stack, ...upstreams.specs("estdio", "esse", "ehttp", "mhttp", "mstdio"));
    const tools = [];
    for (const u of ["estdio", "esse", "ehttp"]) tools.push({ upstream: u, tool: "echo" }, { upstream: u, tool: "trigger-long-running-operation" });
    for (const u of ["mhttp", "mstdio"]) tools.push({ upstream: u, tool: "echo" }, { upstream: u, tool: "progress" }, { upstream: u, tool: "grow" });
    const res = await stack.admin.post("/v1/virtual-servers", { name: "session", driftPolicy: "auto-compatible", tools });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    names = Object.fromEntries(res.body.tools.map((t: { upstream: string; tool: string; exposedName: string }) => [`${t.upstream}/${t.tool}`, t.exposedName]));
    agent = await connectHttp(stack.mcpUrl("session"));
    agent.setNotificationHandler(ToolListChangedNotificationSchema, () => void listChanges++);
  }, 60_000);

  afterAll(async () => {
    await agent?.close();
    await stack?.close();
    await upstreams?.close();
    await nats?.stop();
  });

  const call = (tool: string, args: Record<string, unknown>, onprogress?: (p: { progress: number }) => void) =>
    agent.callTool({ name: names[tool]!, arguments: args }, undefined, { timeout: 30_000, ...(onprogress ? { onprogress } : {}) });
  const kill = async (u: string) => {
    await upstreams.kill(u);
    if (!u.endsWith("stdio")) await upstreams.restart(u);
  };
  const withProgress = async (u: string) => {
    const steps: number[] = [];
    const args = u.startsWith("e") ? { duration: 0.6, steps: 3 } : { steps: 3 };
    await call(u.startsWith("e") ? `${u}/trigger-long-running-operation` : `${u}/progress`, args, (p) => steps.push(p.progress));
    return steps;
  };

  test.each(["estdio", "esse", "ehttp", "mhttp", "mstdio"])("%s: progress reaches the agent again once the upstream is back", async (u) => {
    expect(await withProgress(u)).toEqual([1, 2, 3]);
    await kill(u);
    const backAt = Date.now();
    await eventually(() => call(`${u}/echo`, { message: "back" }).then(() => true, () => undefined), 10_000, 100);
    const recovered = Date.now() - backAt;
    expect(await withProgress(u), `recovered after ${recovered} ms`).toEqual([1, 2, 3]);
  }, 30_000);

  test.each(["mhttp", "mstdio"])("%s: a list change after the restart reaches the agent as list_changed", async (u) => {
    await kill(u);
    await eventually(() => call(`${u}/echo`, { message: "back" }).then(() => true, () => undefined), 10_000, 100);
    const before = listChanges;
    const changedAt = Date.now();
    await call(`${u}/grow`, { property: `after_${u}` });
    // Scheduled rediscovery is minutes away: only the re-opened listen stream explains it.
    await eventually(() => (listChanges > before ? true : undefined), 10_000, 50);
    const echo = await eventually(async () => {
      const tool = (await agent.listTools()).tools.find((t) => t.name === names[`${u}/echo`]);
      return (tool?.inputSchema.properties as Record<string, unknown> | undefined)?.[`after_${u}`] ? tool : undefined;
    }, 10_000, 100);
    expect(echo, `list_changed after ${Date.now() - changedAt} ms`).toBeTruthy();
  }, 30_000);
});
