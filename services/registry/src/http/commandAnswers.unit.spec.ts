import type { VirtualServerState } from "@manifold/domain";
import { describe, expect, test } from "vitest";
import { createdAnswer, toolsSelectedAnswer } from "./commandAnswers.js";
import { MAX_PAGE_BYTES } from "./listPage.js";

/** A virtual server of `count` selected tools with the longest names and a 4 KB description each. */
function serverOf(count: number): VirtualServerState {
  const upstream = "u".repeat(63);
  const tools = new Map(
    Array.from({ length: count }, (_, i) => {
      const exposedName = `${String(i).padStart(5, "0")}_${"t".repeat(58)}`;
      const tool = `${String(i).padStart(5, "0")}${"x".repeat(123)}`;
      return [exposedName, { exposedName, upstream, tool, hash: `sha256:${"0".repeat(64)}`, definition: { name: tool, description: "d".repeat(4096), inputSchema: { type: "object" as const } } }];
    }),
  );
  const none = new Map();
  return { name: "wide", version: 3, created: 1, tools, prompts: none, resources: none, resourceTemplates: none, grants: none, driftPolicy: "pinned", rejected: none, naming: { policy: "bare", prefixes: {} }, deprecatedAliases: none, environments: none, environmentItems: none } as unknown as VirtualServerState;
}

describe("what a command on a virtual server answers", () => {
  test("a selection's pins, never their definitions, at most MAX_PAGE_BYTES of them, `truncated` past it", () => {
    const vs = serverOf(10_000);
    const all = [...vs.tools.values()].map((t) => ({ upstream: t.upstream, tool: t.tool }));
    for (const answer of [createdAnswer(vs), toolsSelectedAnswer(vs, all)]) {
      const text = JSON.stringify(answer);
      expect(text.length).toBeLessThan(MAX_PAGE_BYTES + 8 * 1024);
      expect(text).not.toContain("ddd");
      expect(answer).toMatchObject({ name: "wide", counts: { tools: 10_000 }, truncated: true });
      expect((answer as unknown as { tools: unknown[] }).tools.length).toBeGreaterThan(1_000);
    }
  });

  test("a small selection lists each pin it made, and nothing is cut", () => {
    const vs = serverOf(20);
    const answer = toolsSelectedAnswer(vs, [{ upstream: "u".repeat(63), tool: [...vs.tools.values()][3]!.tool }]) as Record<string, unknown>;
    expect(answer.tools).toEqual([{ exposedName: [...vs.tools.keys()][3], upstream: "u".repeat(63), tool: [...vs.tools.values()][3]!.tool, hash: `sha256:${"0".repeat(64)}` }]);
    expect(answer).not.toHaveProperty("truncated");
  });
});
