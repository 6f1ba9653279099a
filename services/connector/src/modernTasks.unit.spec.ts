import { describe, expect, test } from "vitest";
import { askable, legacyCallAnswer, legacyTask } from "./modernTasks.js";

const task = { taskId: "t1", status: "working", statusMessage: "busy", createdAt: "2026-11-30T10:00:00Z", lastUpdatedAt: "2026-11-30T10:00:01Z", ttlMs: 60_000, pollIntervalMs: 500 };
const form = { method: "elicitation/create", params: { mode: "form", message: "Which?", requestedSchema: { type: "object", properties: {} } } };

describe("a 2026-07-28 upstream's task in the bus's 2025-11-25 shape", () => {
  test("ttlMs and pollIntervalMs become ttl and pollInterval; a null or missing ttl is unlimited; nothing else of the upstream's goes on", () => {
    expect(legacyTask(task)).toEqual({ taskId: "t1", status: "working", statusMessage: "busy", createdAt: task.createdAt, lastUpdatedAt: task.lastUpdatedAt, ttl: 60_000, pollInterval: 500 });
    const { ttlMs: _ttl, pollIntervalMs: _poll, statusMessage: _message, ...bare } = task;
    expect(legacyTask({ ...bare, ttlMs: null, resultType: "complete", result: { content: [] }, inputRequests: { a: form }, extra: "x" })).toEqual({ ...bare, ttl: null });
  });

  test("a task answer becomes a CreateTaskResult (its _meta kept); a result answered at once is passed on as it is", () => {
    const created = JSON.parse(legacyCallAnswer(JSON.stringify({ resultType: "task", ...task, _meta: { k: 1 } })));
    expect(created).toEqual({ task: legacyTask(task), _meta: { k: 1 } });
    const result = JSON.stringify({ resultType: "complete", content: [{ type: "text", text: "now" }] });
    expect(legacyCallAnswer(result)).toBe(result);
    expect(() => legacyCallAnswer(JSON.stringify({ resultType: "task", status: "working" }))).toThrow(/no task id/);
  });

  test("only an input_required task's well-formed questions that the agent may be asked are askable, at most 16", () => {
    const asking = { ...task, status: "input_required", inputRequests: { form, url: { method: "elicitation/create", params: { mode: "url", message: "m", url: "https://x", elicitationId: "e" } }, sample: { method: "sampling/createMessage", params: {} }, bad: { method: "tools/call" } } };
    expect(askable(asking, { elicitation: { form: {} } })).toEqual({ form });
    expect(Object.keys(askable(asking, { elicitation: { form: {}, url: {} }, sampling: {} }))).toEqual(["form", "url", "sample"]);
    expect(askable(asking, undefined)).toEqual({});
    expect(askable({ ...asking, status: "working" }, { elicitation: {} })).toEqual({});
    const many = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, form]));
    expect(Object.keys(askable({ ...task, status: "input_required", inputRequests: many }, { elicitation: {} }))).toHaveLength(16);
  });
});
