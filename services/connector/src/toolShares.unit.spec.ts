import { describe, expect, test } from "vitest";
import { MAX_TIMED_OUT_CALLERS, ToolShares, toolTrouble } from "./toolShares.js";

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

  test("a caller's timeouts open that caller's circuit of the tool only; its success closes its own, not another's", () => {
    const shares = new ToolShares(options);
    const slow = shares.of("slow");
    shares.callerFailed(slow, "mallory", 0, "did not answer within 600 ms");
    shares.callerFailed(slow, "mallory", 0, "did not answer within 600 ms");
    expect(shares.callerCircuit(slow, "mallory")?.state).toBe("open");
    // Another caller has no circuit of its own, and the tool's (rate limits) is closed: it is let through.
    expect(shares.callerCircuit(slow, "alice")).toBeUndefined();
    expect(slow.breaker.allow(0)).toBe(true);
    // The tool is reported, naming how many callers' circuits are open.
    expect([...shares.troubled]).toEqual([slow]);
    expect(toolTrouble(slow)).toBe("open for 1 caller: did not answer within 600 ms");
    shares.callerFailed(slow, "bob", 0, "x");
    shares.succeeded(slow, "bob");
    expect(shares.callerCircuit(slow, "bob")).toBeUndefined();
    expect(shares.callerCircuit(slow, "mallory")?.state).toBe("open");
    expect(shares.troubled.size).toBe(1);
    shares.succeeded(slow, "mallory");
    expect(shares.troubled.size).toBe(0);
    expect(slow.callers.size).toBe(0);
  });

  test("attack: a caller who stops calling after its circuit opened does not keep the tool troubled past its cooldown", () => {
    const shares = new ToolShares(options);
    const slow = shares.of("slow");
    shares.callerFailed(slow, "mallory", 0, "timed out");
    shares.callerFailed(slow, "mallory", 0, "timed out");
    expect(toolTrouble(slow)).toBe("open for 1 caller: timed out");
    // Still in its cooldown: still troubled.
    shares.settle(999);
    expect([...shares.troubled].map((s) => s.tool)).toEqual(["slow"]);
    // Everyone else's calls succeed, and mallory never calls again. Before, the tool stayed
    // troubled (its upstream "degraded") until mallory's next call, however long that took.
    shares.succeeded(slow, "alice");
    shares.settle(1_000);
    expect(shares.troubled.size).toBe(0);
    expect(shares.callerCircuit(slow, "mallory")).toBeUndefined();
    // A probe under way is not forgotten: its outcome decides.
    const other = shares.of("other");
    shares.callerFailed(other, "mallory", 0, "timed out");
    shares.callerFailed(other, "mallory", 0, "timed out");
    expect(shares.callerCircuit(other, "mallory")!.allow(1_000)).toBe(true);
    shares.settle(5_000);
    expect([...shares.troubled].map((s) => s.tool)).toEqual(["other"]);
  });

  test("rate limits (429) still open the tool's own circuit, for every caller", () => {
    const shares = new ToolShares(options);
    const limited = shares.of("limited");
    shares.failed(limited, 0, "rate limited", 5_000);
    shares.failed(limited, 0, "rate limited", 5_000);
    expect(limited.breaker.allow(1_000)).toBe(false);
    expect(toolTrouble(limited)).toBe("open: rate limited");
  });

  test("the callers remembered per tool are bounded: a closed circuit is forgotten before an open one", () => {
    const shares = new ToolShares(options);
    const slow = shares.of("slow");
    shares.callerFailed(slow, "open-one", 0, "x");
    shares.callerFailed(slow, "open-one", 0, "x");
    for (let i = 0; i < MAX_TIMED_OUT_CALLERS * 4; i++) shares.callerFailed(slow, `caller-${i}`, 0, "x");
    expect(slow.callers.size).toBe(MAX_TIMED_OUT_CALLERS);
    expect(shares.callerCircuit(slow, "open-one")?.state).toBe("open");
    expect(slow.openCallers).toBe(1);
  });
});
