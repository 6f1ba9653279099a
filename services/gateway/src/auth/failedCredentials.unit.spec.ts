import { expect, test } from "vitest";
import { FailedCredentials } from "./failedCredentials.js";

/**
 * Each test counts what one instant allows, on a clock held still: on the real one, a CI run on a
 * loaded machine refilled the replica's budget between spending it and the honest caller's
 * admissions (50 admitted where the budget allows 10).
 */
const STILL = () => 0;
const fail = (budget: FailedCredentials, address: string, times: number) => Array.from({ length: times }, () => budget.take(address)).filter(Boolean).length;

test("one address's failures spend its own share, not the replica's budget: another's new JWTs are still verified", () => {
  const budget = new FailedCredentials(100, STILL);
  expect(fail(budget, "10.0.0.1", 500), "failures counted (then 429)").toBe(10);
  expect(budget.admits("10.0.0.1"), "the flooding address's next JWT").toBe(false);
  expect(Array.from({ length: 50 }, () => budget.admits("10.0.0.2")).every(Boolean), "another address's").toBe(true);
});

test("once ten addresses spend the budget, a caller without failures of late draws on a small allowance, and the total stays bounded", () => {
  const budget = new FailedCredentials(100, STILL);
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

/** New, forged JWTs from `addresses` in turn, as the gateway takes them: how many were verified (admitted, then failed and counted). */
const verifiedOf = (budget: FailedCredentials, addresses: string[]) => addresses.filter((address) => budget.admits(address) && (budget.take(address), true)).length;

test("attack: a caller holding an IPv6 /64 gets no fresh share by presenting a new address of it on each request", () => {
  const budget = new FailedCredentials(100, STILL);
  const verified = verifiedOf(budget, Array.from({ length: 200 }, (_, i) => `2001:db8:1:2:${((i * 7919) % 0x10000).toString(16)}:${i.toString(16)}::${(i + 1).toString(16)}`));
  // Before: 110 of 200 verified (the replica's whole budget and the allowance of callers without failures), then 0 of 50 of another caller's.
  expect(verified, "forged JWTs verified of 200").toBe(10);
  expect(Array.from({ length: 50 }, () => budget.admits("2001:db8:1:3::1")).every(Boolean), "another /64's new JWTs").toBe(true);
});

test("an IPv4 client seen as an IPv4-mapped IPv6 address (a dual-stack listener) has its IPv4 address's share", () => {
  const budget = new FailedCredentials(100, STILL);
  expect(fail(budget, "::ffff:192.0.2.9", 5) + fail(budget, "192.0.2.9", 50), "failures counted of either spelling").toBe(10);
  expect(budget.admits("::ffff:192.0.2.9")).toBe(false);
  expect(budget.admits("192.0.2.10"), "its neighbour's").toBe(true);
});

/** Lets what was resolved run, and the event loop's next turn (where a waiting token is looked at again). */
const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};

test("a JWT waiting for checks under way is looked at again whenever one ends, in whatever order they end", async () => {
  const budget = new FailedCredentials(20, STILL);
  // The address's share is 2: two checks under way hold it.
  const first = await budget.verifying("10.0.2.1");
  const second = await budget.verifying("10.0.2.1");
  let third: (() => void) | undefined | "waiting" = "waiting";
  const waiting = budget.verifying("10.0.2.1").then((decided) => (third = decided));
  await turns(2);
  expect(third).toBe("waiting");
  // The newer check fails (counted, as the gatekeeper counts it): one unit left, held by the older check.
  second!();
  budget.take("10.0.2.1");
  await turns(3);
  expect(third, "still held by the older check").toBe("waiting");
  // The older one was a valid token: it spends nothing, and the waiting one is checked.
  first!();
  await waiting;
  expect(typeof third).toBe("function");
});
