import { describe, expect, test } from "vitest";
import { statusNotification } from "./taskStatus.js";

const task = { taskId: "upstream-7", status: "working", createdAt: "2026-11-30T10:00:00Z", lastUpdatedAt: "2026-11-30T10:00:01Z", ttl: 60_000, pollInterval: 500 };

describe("an upstream's task status notification, as the task's owner hears it", () => {
  test("the upstream's task id is replaced by the caller's handle; only a Task's fields go on", () => {
    const heard = statusNotification({ ...task, statusMessage: "busy", _meta: { "io.modelcontextprotocol/related-task": { taskId: "upstream-7" } }, sessionOfAnother: "x", result: { secret: 1 } }, "mt2.handle");
    expect(heard).toEqual({ method: "notifications/tasks/status", params: { ...task, statusMessage: "busy", taskId: "mt2.handle" } });
  });

  test("bounded as a created Task is: a status message of 1,024 characters at most, a pollInterval of 100 ms at least", () => {
    const heard = statusNotification({ ...task, statusMessage: "S".repeat(12_000), pollInterval: 0 }, "mt2.handle");
    expect(heard?.params).toEqual({ ...task, statusMessage: "S".repeat(1_024), pollInterval: 100, taskId: "mt2.handle" });
  });

  test.each([
    ["not an object", "working"],
    ["a createdAt no timestamp is", { ...task, createdAt: "C".repeat(3_000) }],
    ["an unknown status", { ...task, status: "hacked" }],
    ["no timestamps", { taskId: "t", status: "working", ttl: null }],
  ])("%s is dropped", (_what, params) => {
    expect(statusNotification(params, "mt2.handle")).toBeUndefined();
  });
});
