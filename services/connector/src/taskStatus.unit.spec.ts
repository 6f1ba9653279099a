import { NOTIFICATION_BYTES_PER_CALL, TASK_STATUS_PREFIX } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { TaskStatusRelay } from "./taskStatus.js";
import type { UpstreamSession } from "./upstreamSession.js";
import { echoForms } from "./withheldValues.js";

/** The members the relay uses of a session: what it sent, its connection now, and where its status notifications go. */
const sessionSending = (values: string[]) => ({ credentials: echoForms(values), connectionId: "c1", taskStatus: undefined as ((params: unknown, connection: string) => void) | undefined });

describe("a 2025 upstream's task status notifications", () => {
  test("go to the subject of the call that created the task, cleaned of the credentials its session sent", () => {
    const published: [string, string][] = [];
    const relay = new TaskStatusRelay((subject, data) => void published.push([subject, data]), "up");
    const session = sessionSending(["Bearer sk-live-status-0123456789"]);
    const subject = `${TASK_STATUS_PREFIX}.up.abc`;
    relay.watch(session as unknown as UpstreamSession, "c1", subject, JSON.stringify({ task: { taskId: "t1", status: "working" } }));
    // A subject under another upstream's name is not watched: this upstream's connectors may not publish there.
    relay.watch(session as unknown as UpstreamSession, "c1", `${TASK_STATUS_PREFIX}.elsewhere.abc`, JSON.stringify({ task: { taskId: "other", status: "working" } }));
    session.taskStatus!({ taskId: "t1", status: "working", statusMessage: "retrying with Bearer sk-live-status-0123456789" }, "c1");
    session.taskStatus!({ taskId: "other", status: "working" }, "c1");
    session.taskStatus!({ taskId: "t1", status: "failed", statusMessage: "token sk-live-status-0123456789 refused" }, "c1");
    // Ended: no more of its notifications go out.
    session.taskStatus!({ taskId: "t1", status: "working" }, "c1");
    expect(published).toEqual([
      [subject, JSON.stringify({ taskId: "t1", status: "working", statusMessage: "retrying with [redacted]" })],
      [subject, JSON.stringify({ taskId: "t1", status: "failed", statusMessage: "token [redacted] refused" })],
    ]);
  });

  test("attack: an upstream repeating a task's status puts at most the call's notification budget on the bus, and still its end", () => {
    let bytes = 0;
    const published: string[] = [];
    const relay = new TaskStatusRelay((_subject, data) => void (published.push(data), (bytes += data.length)), "up");
    const session = sessionSending([]);
    relay.watch(session as unknown as UpstreamSession, "c1", `${TASK_STATUS_PREFIX}.up.flood`, JSON.stringify({ task: { taskId: "t1", status: "working" } }));
    const message = "x".repeat(15_000);
    // Before: every one of them was published, for as long as the session lived (150 MB here).
    for (let i = 0; i < 10_000; i++) session.taskStatus!({ taskId: "t1", status: "working", statusMessage: message }, "c1");
    expect(bytes).toBeLessThanOrEqual(NOTIFICATION_BYTES_PER_CALL);
    session.taskStatus!({ taskId: "t1", status: "completed" }, "c1");
    expect(JSON.parse(published.at(-1)!)).toEqual({ taskId: "t1", status: "completed" });
  });

  test("attack (helper-104): one caller's many tasks on a shared session do not push another caller's task out of the watch", () => {
    const published: string[] = [];
    const relay = new TaskStatusRelay((subject) => void published.push(subject), "up");
    const session = sessionSending([]);
    const created = (taskId: string) => JSON.stringify({ task: { taskId, status: "working" } });
    relay.watch(session as unknown as UpstreamSession, "c1", `${TASK_STATUS_PREFIX}.up.alice`, created("alice-task"), "alice");
    // Mallory's tasks left running (each a call of hers, from sessions of her own).
    for (let i = 0; i < 5_000; i++) relay.watch(session as unknown as UpstreamSession, "c1", `${TASK_STATUS_PREFIX}.up.m${i}`, created(`m${i}`), "mallory");
    // Before: the 1,000 most recent watches were kept, whoever held them; alice's task was heard no more.
    session.taskStatus!({ taskId: "alice-task", status: "completed" }, "c1");
    expect(published).toEqual([`${TASK_STATUS_PREFIX}.up.alice`]);
    // Mallory's newest still are.
    session.taskStatus!({ taskId: "m4999", status: "completed" }, "c1");
    expect(published.at(-1)).toBe(`${TASK_STATUS_PREFIX}.up.m4999`);
  });

  test("attack (helper-111): a task's watch ends with its upstream connection; the same id on the next connection is another caller's task", () => {
    const published: [string, string][] = [];
    const relay = new TaskStatusRelay((subject, data) => void published.push([subject, JSON.parse(data).statusMessage]), "up");
    const session = sessionSending([]);
    const created = JSON.stringify({ task: { taskId: "1", status: "working" } });
    relay.watch(session as unknown as UpstreamSession, "c1", `${TASK_STATUS_PREFIX}.up.alice`, created, "alice");
    // The upstream restarted: a new connection, whose task "1" is bob's (his call named no status subject).
    session.connectionId = "c2";
    // Before: alice's watch of "1" heard bob's task's statuses.
    session.taskStatus!({ taskId: "1", status: "working", statusMessage: "bob's" }, "c2");
    // A call answered on the closed connection (its task went with it) is not watched.
    relay.watch(session as unknown as UpstreamSession, "c1", `${TASK_STATUS_PREFIX}.up.late`, created, "carol");
    session.taskStatus!({ taskId: "1", status: "working", statusMessage: "bob's again" }, "c2");
    relay.watch(session as unknown as UpstreamSession, "c2", `${TASK_STATUS_PREFIX}.up.bob`, created, "bob");
    session.taskStatus!({ taskId: "1", status: "working", statusMessage: "bob's, to bob" }, "c2");
    // A status still in flight from the old connection goes nowhere.
    session.taskStatus!({ taskId: "1", status: "completed", statusMessage: "old" }, "c1");
    expect(published).toEqual([[`${TASK_STATUS_PREFIX}.up.bob`, "bob's, to bob"]]);
  });
});
