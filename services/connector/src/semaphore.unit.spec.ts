import { describe, expect, test } from "vitest";
import { iterationSteps } from "../../../test/helpers/iterationSteps.js";
import { Semaphore } from "./semaphore.js";

/** A wait the test leaves behind: it times out unheard. */
const waiting = (slot: Promise<() => void> | (() => void)) => {
  if (typeof slot === "function") throw new Error("expected to wait");
  slot.catch(() => undefined);
};

const now = (slot: Promise<() => void> | (() => void)) => {
  if (typeof slot !== "function") throw new Error("expected a free slot");
  return slot;
};

describe("Semaphore", () => {
  test("without contention one caller takes every free slot", () => {
    const slots = new Semaphore(3, 10, "upstream 'u'");
    const releases = [now(slots.acquire(1_000, "a")), now(slots.acquire(1_000, "a")), now(slots.acquire(1_000, "a"))];
    waiting(slots.acquire(10, "a"));
    for (const release of releases) release();
  });

  /**
   * Callers that each keep two calls in flight or waiting, holding a slot for one turn each time, and a
   * quiet caller that asks once: whether the quiet caller is served while the others flood.
   */
  async function flood(limit: number, callers: string[]) {
    const slots = new Semaphore(limit, 1_000, "upstream 'u'");
    const grants: Record<string, number> = Object.fromEntries([...callers, "quiet"].map((c) => [c, 0]));
    let stopped = false;
    const turn = () => new Promise((r) => setImmediate(r));
    const loop = async (caller: string) => {
      while (!stopped) {
        const release = await Promise.resolve(slots.acquire(60_000, caller));
        grants[caller]!++;
        await turn();
        release();
      }
    };
    const running = callers.flatMap((c) => [loop(c), loop(c)]);
    await turn();
    const quiet = Promise.resolve(slots.acquire(60_000, "quiet")).then((release) => (grants.quiet!++, release()));
    for (let i = 0; i < 50; i++) await turn();
    const servedWhileFlooding = grants.quiet === 1;
    stopped = true;
    await Promise.all([...running, quiet]);
    return { grants, servedWhileFlooding };
  }

  test("callers with backlogs take turns: a quiet caller is served while one caller floods a single slot", async () => {
    const { grants, servedWhileFlooding } = await flood(1, ["noisy"]);
    expect(servedWhileFlooding, JSON.stringify(grants)).toBe(true);
  });

  test("a third caller is served while two callers flood two slots", async () => {
    const { grants, servedWhileFlooding } = await flood(2, ["a", "b"]);
    expect(servedWhileFlooding, JSON.stringify(grants)).toBe(true);
    // And the two flooding callers share evenly.
    expect(Math.abs(grants.a! - grants.b!)).toBeLessThanOrEqual(2);
  });

  test("a freed slot goes to the waiting caller holding the fewest, not to the longest queue's head", async () => {
    const slots = new Semaphore(2, 10, "upstream 'u'");
    const first = now(slots.acquire(1_000, "noisy"));
    now(slots.acquire(1_000, "noisy"));
    const order: string[] = [];
    const wait = (caller: string) => (slots.acquire(1_000, caller) as Promise<() => void>).then((release) => (order.push(caller), release));
    const backlog = [wait("noisy"), wait("noisy"), wait("noisy")];
    const quiet = wait("quiet");
    first();
    const quietRelease = await quiet;
    expect(order).toEqual(["quiet"]);
    // Then the noisy caller's backlog in its own order, one slot at a time.
    quietRelease();
    (await backlog[0]!)();
    (await backlog[1]!)();
    await backlog[2];
    expect(order).toEqual(["quiet", "noisy", "noisy", "noisy"]);
  });

  test("a caller alone fills the whole queue; once full, others' calls take the places of its newest waits until the queue is shared evenly", async () => {
    const slots = new Semaphore(1, 4, "tool 't' of upstream 'u'");
    now(slots.acquire(1_000, "noisy"));
    const noisy = [0, 1, 2, 3].map(() => slots.acquire(50, "noisy") as Promise<() => void>);
    for (const wait of noisy) wait.catch(() => undefined);
    expect(() => slots.acquire(1_000, "noisy")).toThrow(/tool 't' of upstream 'u' is saturated: 4 calls already queued/);
    // The newest noisy wait gives its place up, named; the older ones keep theirs.
    waiting(slots.acquire(50, "quiet"));
    await expect(noisy[3]).rejects.toMatchObject({ code: "upstream_unavailable", message: expect.stringContaining("another caller's call took its place") });
    waiting(slots.acquire(50, "quiet"));
    await expect(noisy[2]).rejects.toMatchObject({ code: "upstream_unavailable" });
    // Two each: shared evenly, so neither displaces the other any more.
    expect(() => slots.acquire(1_000, "quiet")).toThrow(/4 calls already queued/);
    expect(() => slots.acquire(1_000, "noisy")).toThrow(/4 calls already queued/);
    // A third caller still finds room: one of the two-call queues gives a place up.
    waiting(slots.acquire(50, "third"));
    expect(() => slots.acquire(1_000, "third")).toThrow(/4 calls already queued/);
  });

  test("a wait that outlasts its budget is a timeout naming the bound, and gives its place up", async () => {
    const slots = new Semaphore(1, 2, "upstream 'u'");
    const release = now(slots.acquire(1_000, "a"));
    await expect(slots.acquire(20, "b")).rejects.toMatchObject({ code: "upstream_timeout", message: "upstream 'u' call waited 20 ms for a free slot" });
    // The timed-out wait holds nothing: the released slot is free again.
    release();
    now(slots.acquire(1_000, "c"))();
  });

  test("callers that hold and await nothing are forgotten, so a flood of callers leaves nothing behind", () => {
    const slots = new Semaphore(4, 4, "upstream 'u'");
    for (let i = 0; i < 10_000; i++) now(slots.acquire(1_000, `caller-${i}`))();
    expect(slots.callers).toBe(0);
    // Every slot is free again, and the queue is whole.
    const held = [0, 1, 2, 3].map(() => now(slots.acquire(1_000, "x")));
    for (let i = 0; i < 4; i++) waiting(slots.acquire(50, "y"));
    expect(() => slots.acquire(1_000, "y")).toThrow(/4 calls already queued/);
    expect(slots.callers).toBe(2);
    for (const release of held) release();
    expect(slots.callers).toBe(1);
  });
  test("with 1,000 callers waiting, a release's pick and a full queue's refusal read no other caller: their work does not grow with the callers", async () => {
    const slots = new Semaphore(1, 1_000, "upstream 'u'");
    let release = now(slots.acquire(1_000, "holder"));
    const order: string[] = [];
    const waits = Array.from({ length: 1_000 }, (_, i) => (slots.acquire(1_000, `caller-${i}`) as Promise<() => void>).then((next) => (order.push(`caller-${i}`), next)));
    expect(slots.callers).toBe(1_001);
    // Before, a full queue read every caller to find the longest queue (1,003 steps here).
    let refused: unknown;
    const refusal = () => {
      try {
        slots.acquire(1_000, "late");
      } catch (error) {
        refused = error;
      }
    };
    expect(iterationSteps(refusal)).toBeLessThanOrEqual(2);
    expect(refused).toMatchObject({ code: "upstream_unavailable", message: expect.stringContaining("1000 calls already queued") });
    // Before, each release read every caller holding or waiting to find the fairest (1,002 steps here).
    expect(iterationSteps(() => release())).toBeLessThanOrEqual(2);
    release = await waits[0]!;
    // The callers are still served in arrival order (each holds none while it waits).
    for (let i = 1; i < 1_000; i++) {
      release();
      release = await waits[i]!;
    }
    release();
    expect(order).toEqual(Array.from({ length: 1_000 }, (_, i) => `caller-${i}`));
    expect(slots.callers).toBe(0);
  });
});
