import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { eventually } from "../helpers/mcp.js";
import { declaring, modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { everythingStdio } from "../helpers/upstreams.js";

const FORM = { elicitation: { form: {} } };
/** More than a connector worker holds open at once (`TaskRounds`' 100). */
const MALLORYS_TASKS = 110;

/**
 * A 2025 upstream asks a task's questions only on a `tasks/result` request, which the connector
 * holds for a 2026-07-28 agent while the task waits for its answer (`TaskRounds`). One caller's
 * tasks waiting for answers she never gives must not take every place: before, mallory's 100
 * unanswered tasks held all of a worker's rounds, and alice's task showed her no question until
 * one of mallory's ended (at the upstream's call timeout).
 */
describe("a 2025 upstream's task questions for 2026-07-28 agents, held per caller", () => {
  let nats: NatsServer;
  let stack: Stack;
  let url: string;
  let research: string;
  let keys: Record<string, string>;

  beforeAll(async () => {
    nats = await startNats();
    stack = await startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_MAX_REQUESTS_PER_S_PER_PRINCIPAL: "100000" });
    await registerUpstreams(stack, { name: "everything", transport: everythingStdio(), options: { maxConcurrency: 256 } });
    research = (await createVirtualServer(stack, "jobs", [{ upstream: "everything", tool: "simulate-research-query" }]))["everything/simulate-research-query"]!;
    url = stack.mcpUrl("jobs");
    keys = await grantedConsumers(stack, "jobs", ["alice", "mallory"]);
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await nats?.stop();
  });

  const ambiguousTask = async (who: string) => {
    const created = await modernRequest(url, keys[who]!, "tools/call", { name: research, arguments: { topic: "python", ambiguous: true } }, declaring(FORM));
    expect(created.result?.resultType, JSON.stringify(created)).toBe("task");
    return created.result!.taskId as string;
  };
  const questionsOf = async (who: string, handle: string) => {
    const got = await modernRequest(url, keys[who]!, "tasks/get", { taskId: handle }, declaring(FORM));
    return { status: got.result?.status as string | undefined, asked: Object.keys(got.result?.inputRequests ?? {}).length };
  };

  test("mallory's unanswered tasks leave alice's task its question", async () => {
    const handles = await Promise.all(Array.from({ length: MALLORYS_TASKS }, () => ambiguousTask("mallory")));
    // Each of mallory's tasks reaches its question (server-everything asks at its third stage, ~2 s), and she polls them all.
    await eventually(async () => ((await questionsOf("mallory", handles.at(-1)!)).status === "input_required" ? true : undefined), 20_000, 200);
    const polled = await Promise.all(handles.map((handle) => questionsOf("mallory", handle)));
    expect(polled.every((p) => p.status === "input_required")).toBe(true);

    const hers = await ambiguousTask("alice");
    const asked = await eventually(async () => {
      const got = await questionsOf("alice", hers);
      return got.asked > 0 ? got : undefined;
    }, 15_000, 200);
    expect(asked).toEqual({ status: "input_required", asked: 1 });
    // Mallory's questions are shown only from rounds held for her: at most a tenth of the worker's.
    expect(polled.filter((p) => p.asked > 0).length).toBeLessThanOrEqual(10);
  }, 90_000);
});
