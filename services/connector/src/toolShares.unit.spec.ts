import { describe, expect, test } from "vitest";
import { ToolShares } from "./toolShares.js";

const options = { upstream: "u", slots: 2, maxQueue: 10, breakerThreshold: 2, breakerCooldownMs: 1_000 };

describe("per-tool shares", () => {
  test("a tool holds at most its slots; another tool is not held up by it", async () => {
    const shares = new ToolShares(options);
    const slow = shares.of("slow");
    expect(typeof slow.slots.acquire(1_000)).toBe("function");
    expect(typeof slow.slots.acquire(1_000)).toBe("function");
    // The third call of the same tool waits (and here times out), while another tool goes straight through.
    await expect(slow.slots.acquire(20)).rejects.toMatchObject({ code: "upstream_timeout", message: expect.stringContaining("tool 'slow' of upstream 'u'") });
    expect(typeof shares.of("echo").slots.acquire(1_000)).toBe("function");
  });

  test("a tool's failures open its own circuit and mark it troubled until it succeeds", () => {
    const shares = new ToolShares(options);
    const slow = shares.of("slow");
    shares.failed(slow, 0, "timed out");
    expect(shares.troubled.size).toBe(0);
    shares.failed(slow, 0, "timed out");
    expect(slow.breaker.state).toBe("open");
    expect([...shares.troubled].map((s) => s.tool)).toEqual(["slow"]);
    expect(shares.of("echo").breaker.state).toBe("closed");
    expect(slow.breaker.allow(1_000)).toBe(true);
    shares.succeeded(slow);
    expect(slow.breaker.state).toBe("closed");
    expect(shares.troubled.size).toBe(0);
  });

  test("the map of tools is bounded, and forgets a healthy tool before a troubled one", () => {
    const shares = new ToolShares({ ...options, maxTools: 3 });
    const troubled = shares.of("t0");
    shares.failed(troubled, 0, "x");
    shares.failed(troubled, 0, "x");
    for (let i = 1; i < 100; i++) shares.of(`t${i}`);
    expect(shares.of("t0")).toBe(troubled);
  });
});
