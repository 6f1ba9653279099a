import { expect, test } from "vitest";
import { FailedCredentials } from "./failedCredentials.js";

const fail = (budget: FailedCredentials, address: string, times: number) => Array.from({ length: times }, () => budget.take(address)).filter(Boolean).length;

test("one address's failures spend its own share, not the replica's budget: another's new JWTs are still verified", () => {
  const budget = new FailedCredentials(100);
  expect(fail(budget, "10.0.0.1", 500), "failures counted (then 429)").toBe(10);
  expect(budget.admits("10.0.0.1"), "the flooding address's next JWT").toBe(false);
  expect(Array.from({ length: 50 }, () => budget.admits("10.0.0.2")).every(Boolean), "another address's").toBe(true);
});

test("once ten addresses spend the budget, a caller without failures of late draws on a small allowance, and the total stays bounded", () => {
  const budget = new FailedCredentials(100);
  for (let i = 0; i < 20; i++) fail(budget, `10.0.1.${i}`, 50);
  expect(budget.admits("10.0.1.0")).toBe(false);
  // Before, while the budget was spent every caller's new JWTs were 429 unverified.
  const honest = Array.from({ length: 50 }, () => budget.admits("192.0.2.7")).filter(Boolean).length;
  expect(honest).toBe(10);
  // An address whose credentials failed in the last second has no part in it.
  expect(budget.take("192.0.2.8")).toBe(false);
  expect(budget.admits("192.0.2.8")).toBe(false);
  expect(budget.admits(undefined), "a caller of unknown address meets the budget alone").toBe(false);
});
