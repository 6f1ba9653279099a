import { describe, expect, test } from "vitest";
import { modernCreated } from "./modernTasks.js";

describe("a 2025-11-25 CreateTaskResult as the 2026-07-28 tasks extension shows it", () => {
  const task = { taskId: "mt2.handle", status: "working", statusMessage: "Gathering sources...", createdAt: "2026-11-30T12:00:00Z", lastUpdatedAt: "2026-11-30T12:00:01Z" };

  test("ttl and pollInterval become ttlMs and pollIntervalMs, flattened beside resultType task", () => {
    expect(modernCreated({ task: { ...task, ttl: 60_000, pollInterval: 1_000 } })).toEqual({ ...task, ttlMs: 60_000, pollIntervalMs: 1_000, resultType: "task" });
  });

  test("an unlimited ttl is null, and no poll interval is left out", () => {
    expect(modernCreated({ task: { ...task, ttl: null } })).toEqual({ ...task, ttlMs: null, resultType: "task" });
  });

  test("an answer that is no task is passed on as it is", () => {
    const result = { content: [{ type: "text", text: "done at once" }] };
    expect(modernCreated(result)).toBe(result);
  });
});
