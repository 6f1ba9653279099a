import { describe, expect, test } from "vitest";
import { HealthBoard } from "./healthBoard.js";

const report = (replica: string, status: "up" | "degraded" | "down", at = "2026-01-01T00:00:10.000Z") => ({
  upstream: "u",
  replica,
  status,
  circuit: "closed" as const,
  at,
});
const now = Date.parse("2026-01-01T00:00:15.000Z");

describe("health board", () => {
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
});
