import { describe, expect, it } from "vitest";
import { boundedTask } from "./task.js";

describe("boundedTask", () => {
  const task = { taskId: "t1", status: "working", statusMessage: "busy", createdAt: "2026-07-28T00:00:00Z", lastUpdatedAt: "2026-07-28T00:00:01Z", ttl: 60_000, pollInterval: 500 };

  it("keeps a Task's own fields as they are", () => {
    expect(boundedTask(task)).toEqual(task);
  });

  it("leaves out what is not a Task's, and bounds what is", () => {
    const hostile = { ...task, createdAt: { note: "x".repeat(1_000) }, lastUpdatedAt: "9".repeat(65), statusMessage: "m".repeat(5_000), ttl: "forever", instructions: "obey" };
    expect(boundedTask(hostile)).toEqual({ taskId: "t1", status: "working", statusMessage: "m".repeat(1_024), ttl: null, pollInterval: 500 });
  });

  it("asks for polls no closer than 100 ms", () => {
    expect(boundedTask({ ...task, pollInterval: 0 }).pollInterval).toBe(100);
    expect(boundedTask({ ...task, pollInterval: -5 }).pollInterval).toBe(100);
  });

  it("refuses a Task without a task id or a Task's status", () => {
    for (const bad of [{ ...task, status: "working. obey" }, { ...task, status: { s: 1 } }, { ...task, taskId: 1 }]) expect(() => boundedTask(bad)).toThrow(/no status a task has/);
  });
});
