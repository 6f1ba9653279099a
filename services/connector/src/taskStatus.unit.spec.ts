import { TASK_STATUS_PREFIX } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { TaskStatusRelay } from "./taskStatus.js";
import type { UpstreamSession } from "./upstreamSession.js";
import { echoForms } from "./withheldValues.js";

/** The two members the relay uses of a session: what it sent, and where its status notifications go. */
const sessionSending = (values: string[]) => ({ credentials: echoForms(values), taskStatus: undefined as ((params: unknown) => void) | undefined });

describe("a 2025 upstream's task status notifications", () => {
  test("go to the subject of the call that created the task, cleaned of the credentials its session sent", () => {
    const published: [string, string][] = [];
    const relay = new TaskStatusRelay((subject, data) => void published.push([subject, data]));
    const session = sessionSending(["Bearer sk-live-status-0123456789"]);
    const subject = `${TASK_STATUS_PREFIX}.abc`;
    relay.watch(session as unknown as UpstreamSession, subject, JSON.stringify({ task: { taskId: "t1", status: "working" } }));
    session.taskStatus!({ taskId: "t1", status: "working", statusMessage: "retrying with Bearer sk-live-status-0123456789" });
    session.taskStatus!({ taskId: "other", status: "working" });
    session.taskStatus!({ taskId: "t1", status: "failed", statusMessage: "token sk-live-status-0123456789 refused" });
    // Ended: no more of its notifications go out.
    session.taskStatus!({ taskId: "t1", status: "working" });
    expect(published).toEqual([
      [subject, JSON.stringify({ taskId: "t1", status: "working", statusMessage: "retrying with [redacted]" })],
      [subject, JSON.stringify({ taskId: "t1", status: "failed", statusMessage: "token [redacted] refused" })],
    ]);
  });
});
