import { describe, expect, test } from "vitest";
import { Cancellation } from "./cancellation.js";

describe("a call's cancellation", () => {
  test("runs its action once, when cancelled, or at once when already cancelled", () => {
    const runs: string[] = [];
    const early = new Cancellation();
    early.onCancel(() => runs.push("early"));
    expect(runs).toEqual([]);
    early.cancel();
    early.cancel();
    const late = new Cancellation();
    late.cancel();
    late.onCancel(() => runs.push("late"));
    expect(runs).toEqual(["early", "late"]);
    expect(early.cancelled && late.cancelled).toBe(true);
  });

  test("runs every action still registered: a round's, once forgotten, does not stand in for the request's", () => {
    const runs: string[] = [];
    const cancellation = new Cancellation();
    const request = () => runs.push("abort the request");
    const round = () => runs.push("end the round");
    cancellation.onCancel(request);
    cancellation.onCancel(round);
    cancellation.offCancel(round);
    cancellation.offCancel(() => undefined);
    cancellation.cancel();
    expect(runs).toEqual(["abort the request"]);
  });

  test("hands out an AbortSignal only when asked, aborted with the call", () => {
    const asked = new Cancellation();
    const signal = asked.signal;
    expect(signal.aborted).toBe(false);
    asked.cancel();
    expect(signal.aborted).toBe(true);
    const after = new Cancellation();
    after.cancel();
    expect(after.signal.aborted).toBe(true);
  });
});
