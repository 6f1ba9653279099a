import { describe, expect, test } from "vitest";
import { HealthBoard, MAX_REPLICAS_PER_UPSTREAM, MAX_UPSTREAMS } from "./healthBoard.js";

const report = (replica: string, status: "up" | "degraded" | "down", at = "2026-01-01T00:00:10.000Z") => ({
  upstream: "u",
  replica,
  status,
  circuit: "closed" as const,
  at,
});
const now = Date.parse("2026-01-01T00:00:15.000Z");

describe("health board", () => {
  test("says an upstream takes resource subscriptions when a fresh replica's session declared them, not when all that said did not, nothing before any said", () => {
    const board = new HealthBoard(30_000);
    expect(board.subscribes("u", now)).toBeUndefined();
    board.record(report("a", "up"));
    expect(board.subscribes("u", now)).toBeUndefined();
    board.record({ ...report("b", "up"), resourceSubscribe: false });
    expect(board.subscribes("u", now)).toBe(false);
    board.record({ ...report("c", "up"), resourceSubscribe: true });
    expect(board.subscribes("u", now)).toBe(true);
    // A stale report says nothing.
    board.record({ ...report("c", "up", "2025-01-01T00:00:00.000Z"), resourceSubscribe: true });
    expect(board.subscribes("u", now)).toBe(false);
  });
  test("is unknown without reports", () => {
    expect(new HealthBoard(30_000).of("u", now).status).toBe("unknown");
  });
  test("is the common status when every replica agrees", () => {
    const board = new HealthBoard(30_000);
    board.record(report("a", "down"));
    board.record(report("b", "down"));
    expect(board.of("u", now).status).toBe("down");
  });
  test("is degraded when replicas disagree and one can still serve", () => {
    const board = new HealthBoard(30_000);
    board.record(report("a", "up"));
    board.record(report("b", "down"));
    expect(board.of("u", now)).toMatchObject({ status: "degraded", replicas: [{ replica: "a" }, { replica: "b" }] });
  });
  test("keeps only each replica's last report and ignores stale ones", () => {
    const board = new HealthBoard(30_000);
    board.record(report("a", "down"));
    board.record(report("a", "up"));
    board.record(report("gone", "down", "2025-12-31T23:00:00.000Z"));
    expect(board.of("u", now)).toMatchObject({ status: "up", replicas: [{ replica: "a", status: "up" }] });
  });
  // attack (helper-94): a report dated ten years ahead kept an upstream `up` for good.
  test("ignores a report dated further ahead than a stale one is behind", () => {
    const board = new HealthBoard(30_000);
    board.record(report("a", "up", "2036-01-01T00:00:00.000Z"));
    expect(board.of("u", now).status).toBe("unknown");
    board.record(report("b", "down", "2026-01-01T00:00:20.000Z"));
    expect(board.of("u", now).status).toBe("down");
  });
  // helper-177: a frozen replica's task was told gone ("start the call again") while it ran on.
  test("a replica heard from lately is away; one that said goodbye, went stale or was never heard from is gone", () => {
    const board = new HealthBoard(30_000, Date.parse("2026-01-01T00:00:00.000Z") - 60_000);
    board.record(report("frozen", "up"));
    board.record({ ...report("stopped", "up"), stopped: true as const });
    board.record(report("killed", "up", "2026-01-01T00:00:10.000Z"));
    expect(board.away("u", "frozen", now)).toBe(true);
    expect(board.away("u", "stopped", now)).toBe(false);
    expect(board.away("u", "killed", Date.parse("2026-01-01T00:00:40.001Z"))).toBe(false);
    expect(board.away("u", "unknown", now)).toBe(false);
    // A board younger than staleMs cannot tell yet: a replica frozen since before it began has not beaten.
    const young = new HealthBoard(30_000, now - 5_000);
    expect(young.away("u", "unknown", now)).toBe(true);
    expect(young.away("u", "unknown", now + 25_001)).toBe(false);
    // A replica that said goodbye no longer counts in its upstream's health.
    expect(board.of("u", now).replicas.map((r) => r.replica)).toEqual(["frozen", "killed"]);
  });
  // attack (helper-94): 300 replica names on one upstream's subjects were all kept, and all shown.
  test("keeps the replicas and upstreams heard from last, within bounds", () => {
    const board = new HealthBoard(30_000);
    for (let i = 0; i < MAX_REPLICAS_PER_UPSTREAM + 10; i++) board.record(report(`r${i}`, "down"));
    board.record(report("r0", "up"));
    const kept = board.of("u", now).replicas.map((r) => r.replica);
    expect(kept).toHaveLength(MAX_REPLICAS_PER_UPSTREAM);
    expect(kept).toContain("r0");
    expect(kept).not.toContain("r10");
    for (let i = 0; i < MAX_UPSTREAMS; i++) board.record({ ...report("a", "up"), upstream: `x${i}` });
    expect(board.of("u", now).status).toBe("unknown");
    expect(board.of(`x${MAX_UPSTREAMS - 1}`, now).status).toBe("up");
  });
});
