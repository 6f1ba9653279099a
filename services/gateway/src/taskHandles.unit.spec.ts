import { describe, expect, test } from "vitest";
import { Sealer } from "./sealer.js";
import { TaskHandles } from "./taskHandles.js";

describe("task handles", () => {
  const handles = new TaskHandles(Buffer.alloc(32, 7));
  const home = { upstream: "everything", tool: "research", replica: "replica-1", connection: "conn-1", taskId: "1b2c-upstream-id" };

  test("open what was sealed for the same caller, virtual server and environment", () => {
    const handle = handles.seal(home, "alice\0vs\0default");
    expect(handle).toMatch(/^mt2\.[A-Za-z0-9_-]+$/);
    expect(handle).not.toContain("everything");
    expect(handles.open(handle, "alice\0vs\0default")).toEqual(home);
  });

  test("another caller, another virtual server, another key, a tampered or made-up id: nothing", () => {
    const handle = handles.seal(home, "alice\0vs\0default");
    expect(handles.open(handle, "mallory\0vs\0default")).toBeUndefined();
    expect(handles.open(handle, "alice\0other\0default")).toBeUndefined();
    expect(new TaskHandles(Buffer.alloc(32, 8)).open(handle, "alice\0vs\0default")).toBeUndefined();
    const raw = Buffer.from(handle.slice(4), "base64url");
    raw[14] = raw[14]! ^ 1;
    expect(handles.open(`mt2.${raw.toString("base64url")}`, "alice\0vs\0default")).toBeUndefined();
    for (const made of ["", "mt2.", "mt2.AAAA", "1b2c-upstream-id", 42, null, `mt2.${"A".repeat(5000)}`]) expect(handles.open(made, "alice\0vs\0default")).toBeUndefined();
  });

  test("two seals of one task differ (a handle says nothing about another)", () => {
    expect(handles.seal(home, "a")).not.toBe(handles.seal(home, "a"));
  });

  test("a handle sealed before handles named the upstream connection opens nothing (its task's connection is unknown)", () => {
    const old = new Sealer(Buffer.alloc(32, 7), "manifold task handle v2", "mt2.").seal(JSON.stringify({ u: "everything", n: "research", r: "replica-1", t: "1" }), "alice\0vs\0default");
    expect(handles.open(old, "alice\0vs\0default")).toBeUndefined();
  });
});
