import type { NatsServer } from "@manifold/nats-server";
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Agent } from "../helpers/eraAgents.js";
import { bothEraAgents, closeSuite, registerOutOfRangeUpstreams } from "../helpers/outOfRangeUpstreams.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const UPSTREAMS = ["http", "stdio"] as const;
/** The 2026-07-28 sibling on the 2.x server package: its HTTP calls go by the direct caller, the rest by the SDK client's lane. */
const MODERN_UPSTREAMS = ["modern-http", "modern-stdio"] as const;
const EVERY_UPSTREAM = [...UPSTREAMS, ...MODERN_UPSTREAMS] as const;
type Failure = { code?: number; message?: string; data?: Record<string, unknown> };

/**
 * Every other answer of an upstream, beside tools/call's (unrepresentableNumbers.e2e), holding a
 * number no double can hold (1e400, which `JSON.parse` reads as Infinity): before 2026-12-07
 * (helper-200) a list, an item, a completion or a task's answer reached the registry or the agent
 * with `null` there (a definition pinned with `maximum: null`), a stdio upstream's notification was
 * passed on, and a request on an HTTP call's stream was dropped unanswered (the upstream waited for
 * its own timeout). Now each answer is `upstream_error` / `invalid_result` naming the path, a
 * discovery holding one is refused (the recorded definitions stay), a notification is dropped and a
 * request is answered -32600 naming the path. The same holds of a 2026-07-28 upstream on the 2.x
 * server package (`modern-*`: its HTTP calls by the direct caller, everything else and its stdio
 * calls by the SDK client's lane) and of a task's status in tasks/get (2026-12-07, helper-204: each
 * passes with the fix, and fails with the transport guard taken out, the HTTP call only with the
 * direct caller's check taken out too).
 */
describe("upstream answers beyond tools/call holding numbers no double holds", () => {
  let nats: NatsServer;
  let stack: Stack;
  let children: ChildProcess[];
  let tools: Record<string, string>;
  let prompts: Record<string, string>;
  let upstreamUrl: string;
  let agents: Agent[];

  /** Has the upstream hold 1e400 in its answers to `methods` (none: heals it). */
  const poison = async (upstream: string, methods: string[]) => {
    await agents[0]!.callTool(tools[`${upstream}/poison`]!, { methods });
  };
  const failure = (request: Promise<unknown>): Promise<Failure | { answered: unknown }> =>
    request.then(
      (answered) => ({ answered }),
      (e: Failure) => e,
    );
  /** An `upstream_error` / `invalid_result` naming `path`, and neither the number nor `null`. */
  const refusedAt = (got: Failure | { answered: unknown }, path: string, what: string) => {
    expect(got, `${what}: ${JSON.stringify(got)}`).toMatchObject({ data: { code: "upstream_error", reason: "invalid_result", path } });
    expect((got as Failure).message, what).not.toMatch(/e400|null/);
  };
  /** The upstream's recorded definitions, as the registry holds them. */
  const recorded = async (upstream: string) => {
    const { body } = await stack.admin.get(`/v1/upstreams/${upstream}`);
    return JSON.stringify({ tools: body.tools, prompts: body.prompts, resources: body.resources, resourceTemplates: body.resourceTemplates });
  };

  beforeAll(async () => {
    nats = await startNats();
    stack = await startStack(nats.url, { GATEWAY_AUTH: "required" });
    children = await registerOutOfRangeUpstreams(stack, { modern: true });
    upstreamUrl = (await stack.admin.get("/v1/upstreams/http")).body.transport.url;
    const created = await stack.admin.post("/v1/virtual-servers", {
      name: "items",
      tools: [
        ...UPSTREAMS.flatMap((upstream) => ["poison", "ask-infinite", "task-tool", "working-task"].map((tool) => ({ upstream, tool }))),
        ...MODERN_UPSTREAMS.flatMap((upstream) => ["poison", "infinite-result"].map((tool) => ({ upstream, tool }))),
      ],
      resources: EVERY_UPSTREAM.map((upstream) => ({ upstream, uri: "num://r/one" })),
      prompts: EVERY_UPSTREAM.map((upstream) => ({ upstream, prompt: "p" })),
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    tools = Object.fromEntries(created.body.tools.map((t: { upstream: string; tool: string; exposedName: string }) => [`${t.upstream}/${t.tool}`, t.exposedName]));
    prompts = Object.fromEntries(created.body.prompts.map((p: { upstream: string; exposedName: string }) => [p.upstream, p.exposedName]));
    agents = await bothEraAgents(stack, "items");
  }, 60_000);

  afterAll(() => closeSuite({ agents, stack, children, nats }));

  test.each(EVERY_UPSTREAM)("%s upstream: resources/read, prompts/get and completion/complete answers holding 1e400 are upstream_error / invalid_result naming the path, for 1.32.2 and 2.4 clients", async (upstream) => {
    const requests = {
      "resources/read": [(agent: Agent) => agent.readResource(`${upstream}+num://r/one`), "/result/contents/0/_meta/n"],
      "prompts/get": [(agent: Agent) => agent.getPrompt(prompts[upstream]!, {}), "/result/_meta/n"],
      "completion/complete": [(agent: Agent) => agent.complete({ ref: { type: "ref/prompt", name: prompts[upstream]! }, argument: { name: "a", value: "x" } }), "/result/completion/total"],
    } as const;
    for (const [method, [request, path]] of Object.entries(requests)) {
      await poison(upstream, [method]);
      for (const agent of agents) refusedAt(await failure(request(agent)), path, `${upstream} ${method} (${agent.era})`);
      await poison(upstream, []);
      // Healed, the same request is answered: the session was kept.
      for (const agent of agents) expect(await failure(request(agent)), `${upstream} ${method} healed (${agent.era})`).toHaveProperty("answered");
    }
  });

  test.each(EVERY_UPSTREAM)("%s upstream: a tools, prompts, resources or templates list holding 1e400 fails the discovery, naming the path; the recorded definitions stay as they were", async (upstream) => {
    const before = await recorded(upstream);
    expect(before).toContain("infinite-result");
    for (const [method, path] of [
      ["tools/list", "/result/tools/0/inputSchema/x-limit"],
      ["prompts/list", "/result/prompts/0/_meta/n"],
      ["resources/list", "/result/resources/0/size"],
      ["resources/templates/list", "/result/resourceTemplates/0/_meta/n"],
    ] as const) {
      await poison(upstream, [method]);
      const { body } = await stack.admin.post(`/v1/upstreams/${upstream}/discover`, {});
      expect(body.discovery, `${upstream} ${method}: ${JSON.stringify(body.discovery)}`).toMatchObject({ status: "failed", error: { code: "upstream_error" } });
      expect(body.discovery.error.message, method).toContain(`'${path}'`);
      expect(body.discovery.error.message, method).not.toMatch(/e400/);
      expect(await recorded(upstream), `${upstream} ${method}: what the registry recorded`).toBe(before);
    }
    await poison(upstream, []);
    expect((await stack.admin.post(`/v1/upstreams/${upstream}/discover`, {})).body.discovery.status).toBe("ok");
  });

  test.each(UPSTREAMS)("%s upstream: a task's tasks/result holding 1e400 is upstream_error / invalid_result naming the path", async (upstream) => {
    await poison(upstream, ["tasks/result"]);
    refusedAt(await failure(agents[0]!.runTask(tools[`${upstream}/task-tool`]!, {})), "/result/structuredContent/x", `${upstream} tasks/result`);
    await poison(upstream, []);
    expect((await agents[0]!.runTask(tools[`${upstream}/task-tool`]!, {})).result.content).toEqual([{ type: "text", text: "task done" }]);
  });

  test.each(UPSTREAMS)("%s upstream: a task's status holding 1e400 (tasks/get of a task still working) is upstream_error / invalid_result naming the path, for 1.32.2 and 2.4 clients", async (upstream) => {
    const task = tools[`${upstream}/working-task`]!;
    await poison(upstream, ["tasks/get"]);
    for (const agent of agents) refusedAt(await failure(agent.runTask(task, {})), "/result/pollInterval", `${upstream} tasks/get (${agent.era})`);
    await poison(upstream, []);
    // Healed, the task is polled to its end (tasks/get answered: completed).
    for (const agent of agents) expect((await agent.runTask(task, {})).status, `${upstream} healed (${agent.era})`).toBe("completed");
  });

  test.each(MODERN_UPSTREAMS)("%s upstream: a tools/call result holding 1e400 is upstream_error / invalid_result naming the path, for 1.32.2 and 2.4 clients", async (upstream) => {
    for (const agent of agents) refusedAt(await failure(agent.callTool(tools[`${upstream}/infinite-result`]!, {})), "/result/structuredContent/x", `${upstream} tools/call (${agent.era})`);
  });

  test.each(UPSTREAMS)("%s upstream: its elicitation/create request holding 1e400 is answered -32600 naming the path, not left to the upstream's timeout", async (upstream) => {
    for (const agent of agents) {
      const result = await agent.callTool(tools[`${upstream}/ask-infinite`]!, {});
      const said = (result.content as { text: string }[])[0]!.text;
      expect(said, `${upstream} ${agent.era}`).toMatch(/^answered /);
      expect(JSON.parse(said.slice("answered ".length)), `${upstream} ${agent.era}`).toMatchObject({ code: -32600, message: expect.stringContaining("'/params/requestedSchema/properties/n/maximum'") });
      expect(said).not.toMatch(/e400/);
    }
  });

  test("attack: requests holding 1e400 on one call's stream are answered only up to the call's 32: 40 of them fail the call, not 40 POSTs", async () => {
    const stats = async () => (await (await fetch(new URL("/stats", upstreamUrl))).json()) as { answers: number };
    const before = (await stats()).answers;
    const got = await failure(agents[0]!.callTool(tools["http/ask-infinite"]!, { count: 40 }));
    expect(got, JSON.stringify(got)).toMatchObject({ data: { code: "upstream_error" } });
    expect((got as Failure).message).toContain("more than 32 requests during one call");
    // Answers are POSTed as each request is refused: the last may land after the call failed.
    let answered = 0;
    for (let i = 0; i < 40 && answered < 32; i++) {
      answered = (await stats()).answers - before;
      if (answered < 32) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(answered).toBe(32);
  });
});
