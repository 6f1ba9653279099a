import { describe, expect, test } from "vitest";
import { CancellationNotices } from "./cancellationNotices.js";

/** A send that stays in flight until the test ends it. */
function held(sent: string[], name: string, ends: (() => void)[]) {
  return () => {
    sent.push(name);
    return new Promise<void>((resolve) => ends.push(resolve));
  };
}
const settle = () => new Promise((r) => setTimeout(r, 0));

describe("CancellationNotices", () => {
  test("past the places in flight, cancellations wait in order and go out as places free; past the waiting bound they are dropped", async () => {
    const notices = new CancellationNotices(2, 2);
    const sent: string[] = [];
    const ends: (() => void)[] = [];
    expect(["a", "b", "c", "d", "e"].map((name) => notices.send(held(sent, name, ends)))).toEqual([true, true, true, true, false]);
    await settle();
    expect(sent).toEqual(["a", "b"]);
    expect([notices.inFlight, notices.waiting]).toEqual([2, 2]);
    ends.shift()!();
    await settle();
    expect(sent).toEqual(["a", "b", "c"]);
    for (let i = 0; i < 2; i++) {
      ends.shift()!();
      await settle();
    }
    expect(sent).toEqual(["a", "b", "c", "d"]);
    expect([notices.inFlight, notices.waiting]).toEqual([1, 0]);
  });

  test("a send that fails or throws frees its place", async () => {
    const notices = new CancellationNotices(1, 4);
    const sent: string[] = [];
    notices.send(() => Promise.reject(new Error("refused")));
    notices.send(() => {
      throw new Error("thrown");
    });
    notices.send(async () => void sent.push("third"));
    for (let i = 0; i < 6; i++) await settle();
    expect(sent).toEqual(["third"]);
    expect(notices.inFlight).toBe(0);
  });
});
