import { ManifoldError } from "@manifold/contracts";
import { EventEmitter } from "node:events";
import { describe, expect, test } from "vitest";
import { InFlight, MAX_UNREAD_ANSWER_BYTES } from "./inFlight.js";

describe("calls in flight at shutdown", () => {
  test("a drain waits for every held response, and refuses what comes after it began", async () => {
    const inFlight = new InFlight();
    const [first, second] = [new EventEmitter(), new EventEmitter()];
    inFlight.hold(first);
    inFlight.hold(second);
    let drained = false;
    const drain = inFlight.drain(10_000).then(() => (drained = true));
    // A request admitted while the drain began (the edge awaits admission) is refused, not held: nothing waits for it.
    expect(() => inFlight.mustAccept()).toThrow(expect.objectContaining({ code: "shutting_down" }) as ManifoldError);
    first.emit("close");
    await new Promise((r) => setImmediate(r));
    expect(drained).toBe(false);
    second.emit("close");
    await drain;
    expect(drained).toBe(true);
  });

  test("before a drain, work is accepted; a drain with nothing held ends at once", async () => {
    const inFlight = new InFlight();
    expect(() => inFlight.mustAccept()).not.toThrow();
    await expect(inFlight.drain(10_000)).resolves.toBeUndefined();
  });

  test("a response already closed when it is held gives its place back at once (its close event is past)", async () => {
    const inFlight = new InFlight(1);
    const alice = { id: "consumer:alice", consumer: "alice", groups: [] };
    const gone = Object.assign(new EventEmitter(), { destroyed: true });
    inFlight.hold(gone, alice);
    inFlight.hold(Object.assign(new EventEmitter(), { destroyed: true }));
    // Before, the caller's one place was taken for good, and a drain waited out its limit.
    expect(() => inFlight.hold(new EventEmitter(), alice)).not.toThrow();
    const other = new InFlight();
    other.hold(Object.assign(new EventEmitter(), { destroyed: true }), alice);
    await expect(other.drain(10_000)).resolves.toBeUndefined();
  });

  test("one caller holds at most its bound of calls, a batch counting each; a closed response gives its calls back", () => {
    const inFlight = new InFlight(3);
    const alice = { id: "consumer:alice", consumer: "alice", groups: [] };
    const bob = { id: "consumer:bob", consumer: "bob", groups: [] };
    const [one, batch] = [new EventEmitter(), new EventEmitter()];
    inFlight.hold(one, alice);
    inFlight.hold(batch, alice, 2);
    expect(() => inFlight.hold(new EventEmitter(), alice)).toThrow(
      expect.objectContaining({ code: "too_many_calls", message: "consumer 'alice' already has 3 calls in flight on this gateway replica (at most 3); wait for an answer" }) as ManifoldError,
    );
    // Another caller is not affected.
    inFlight.hold(new EventEmitter(), bob, 3);
    batch.emit("close");
    inFlight.hold(new EventEmitter(), alice, 2);
    expect(() => inFlight.hold(new EventEmitter(), alice)).toThrow(expect.objectContaining({ code: "too_many_calls" }) as ManifoldError);
    one.emit("close");
    inFlight.hold(new EventEmitter(), alice);
  });

  test("calls running are counted apart from responses, until each is released, per caller", () => {
    const inFlight = new InFlight(2);
    const alice = { id: "consumer:alice#3", consumer: "alice", groups: [] };
    const first = inFlight.running(alice, "c");
    const second = inFlight.running(alice, "c");
    expect(() => inFlight.running(alice, "c")).toThrow(expect.objectContaining({ code: "too_many_calls" }) as ManifoldError);
    // A consumer created again under the name is another caller.
    inFlight.running({ ...alice, id: "consumer:alice#9" }, "c")();
    first();
    const third = inFlight.running(alice, "c");
    second();
    third();
    inFlight.running(alice, "c");
    inFlight.running(alice, "c");
  });
});

describe("answers a caller leaves unread", () => {
  test("past MAX_UNREAD_ANSWER_BYTES held unwritten, the caller's next call is refused answers_unread; another caller's is not, and reading frees room", () => {
    const inFlight = new InFlight();
    const alice = { id: "consumer:alice", consumer: "alice", groups: [] };
    const bob = { id: "consumer:bob", consumer: "bob", groups: [] };
    const slow = Object.assign(new EventEmitter(), { writableLength: MAX_UNREAD_ANSWER_BYTES - 1 });
    inFlight.hold(slow, alice);
    expect(() => inFlight.mustHaveRoom(alice)).not.toThrow();
    slow.writableLength = MAX_UNREAD_ANSWER_BYTES;
    expect(() => inFlight.hold(new EventEmitter(), alice)).toThrow(expect.objectContaining({ code: "answers_unread", data: { unreadBytes: MAX_UNREAD_ANSWER_BYTES, maxBytes: MAX_UNREAD_ANSWER_BYTES } }) as ManifoldError);
    expect(() => inFlight.hold(new EventEmitter(), bob)).not.toThrow();
    slow.emit("close");
    expect(() => inFlight.hold(new EventEmitter(), alice)).not.toThrow();
  });

  test("answers written in one piece are read only once written, and only while bytes are left: the check's work does not grow with the caller's calls awaiting answers", () => {
    const inFlight = new InFlight();
    const alice = { id: "consumer:alice", consumer: "alice", groups: [] };
    let reads = 0;
    const response = (bytes = 0) => {
      const emitter = new EventEmitter();
      return Object.defineProperty(emitter, "writableLength", { get: () => (reads++, bytes), set: (value: number) => (bytes = value) }) as EventEmitter & { writableLength: number };
    };
    // 255 calls awaiting their answers, as the fast path holds them: nothing to write until the answer comes.
    const waiting = Array.from({ length: 255 }, () => response());
    for (const held of waiting) {
      inFlight.hold(held, alice);
      inFlight.writesAtEnd(held, alice);
    }
    reads = 0;
    inFlight.mustHaveRoom(alice);
    // Before, every held response was read on every call admitted and every answer (255 here).
    expect(reads).toBe(0);
    // One answer written whole: the kernel took it all, so it holds nothing.
    inFlight.wrote(waiting[0]!, alice);
    inFlight.mustHaveRoom(alice);
    expect(reads).toBe(1);
    // One the kernel did not take: counted until its response closes.
    const slow = waiting[1]!;
    slow.writableLength = MAX_UNREAD_ANSWER_BYTES;
    inFlight.wrote(slow, alice);
    expect(() => inFlight.mustHaveRoom(alice)).toThrow(expect.objectContaining({ code: "answers_unread" }) as ManifoldError);
    slow.emit("close");
    reads = 0;
    expect(() => inFlight.mustHaveRoom(alice)).not.toThrow();
    expect(reads).toBe(0);
    // A response the SDK lane writes (not declared) is read every time, as before.
    const streamed = response(MAX_UNREAD_ANSWER_BYTES);
    inFlight.hold(new EventEmitter(), alice);
    expect(() => inFlight.hold(streamed, alice)).not.toThrow();
    expect(() => inFlight.mustHaveRoom(alice)).toThrow(expect.objectContaining({ code: "answers_unread" }) as ManifoldError);
  });
});
