import { ManifoldError } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
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

  test("one caller may fill half of the queue; another still finds room, and the queue's own bound holds", () => {
    const slots = new Semaphore(1, 4, "tool 't' of upstream 'u'");
    now(slots.acquire(1_000, "noisy"));
    waiting(slots.acquire(50, "noisy"));
    waiting(slots.acquire(50, "noisy"));
    expect(() => slots.acquire(1_000, "noisy")).toThrow(/tool 't' of upstream 'u' is saturated: this caller already has 2 calls queued/);
    waiting(slots.acquire(50, "quiet"));
    waiting(slots.acquire(50, "other"));
    const full = (() => {
      try {
        slots.acquire(1_000, "late");
      } catch (error) {
        return error as ManifoldError;
      }
    })();
    expect(full).toBeInstanceOf(ManifoldError);
    expect(full?.code).toBe("upstream_unavailable");
    expect(full?.message).toContain("4 calls already queued");
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
    // Every slot is free again, and a new caller's queue is the full half.
    const held = [0, 1, 2, 3].map(() => now(slots.acquire(1_000, "x")));
    waiting(slots.acquire(50, "y"));
    waiting(slots.acquire(50, "y"));
    expect(() => slots.acquire(1_000, "y")).toThrow(/this caller already has 2 calls queued/);
    expect(slots.callers).toBe(2);
    for (const release of held) release();
    expect(slots.callers).toBe(1);
  });
});
