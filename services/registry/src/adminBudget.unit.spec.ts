import { ManifoldError } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { AdminBudget } from "./adminBudget.js";

const refusal = async (taking: Promise<void>) => taking.then(() => undefined, (error: unknown) => error);

describe("an admin token's request budget", () => {
  test("each admin its own; past it, rate_limited with a Retry-After, answered only after the hold", async () => {
    // 10 a second: 1 at once (a tenth of a second's worth), the next a tenth of a second later.
    const budget = new AdminBudget(10, 50);
    await budget.take("eve");
    const started = performance.now();
    const error = await refusal(budget.take("eve"));
    expect(performance.now() - started).toBeGreaterThanOrEqual(45);
    expect(error).toBeInstanceOf(ManifoldError);
    expect(error).toMatchObject({ code: "rate_limited", data: { retryAfterSeconds: 1 } });
    expect((error as Error).message).toContain("admin 'eve'");
    // Bob's budget is his own.
    expect(await refusal(budget.take("bob"))).toBeUndefined();
  });

  test("requests without a valid token share one budget; past it they wait out the hold (their 401 follows)", async () => {
    const budget = new AdminBudget(10, 50);
    let started = performance.now();
    await budget.takeUnauthenticated();
    expect(performance.now() - started).toBeLessThan(45);
    started = performance.now();
    await budget.takeUnauthenticated();
    expect(performance.now() - started).toBeGreaterThanOrEqual(45);
    // An admin's budget is not theirs.
    expect(await refusal(budget.take("admin"))).toBeUndefined();
  });
});
