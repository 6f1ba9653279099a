import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import { describe, expect, test } from "vitest";
import { iterationSteps } from "../../../test/helpers/iterationSteps.js";
import { AdmittedStreams, streamShare } from "./admittedStreams.js";

/** A response as a stream holds it: closes once destroyed, on a socket of its own. */
const stream = (name: string) => {
  const response = Object.assign(new EventEmitter(), {
    destroyed: false,
    socket: { name } as unknown as Socket,
    destroy() {
      response.destroyed = true;
      response.emit("close");
    },
  });
  return response;
};
const admitted = () => Promise.resolve("kept" as const);

describe("streams at the connection bound", () => {
  test("attack: the caller holding the most gives up its oldest stream, and its connection", () => {
    const streams = new AdmittedStreams();
    const alice = stream("alice-1");
    const mallory = [stream("mallory-1"), stream("mallory-2"), stream("mallory-3")];
    streams.watch(alice, "consumer:alice#1", admitted);
    for (const s of mallory) streams.watch(s, "consumer:mallory#2", admitted);

    expect(streams.yieldOne()).toBe(mallory[0]!.socket);
    expect(mallory.map((s) => s.destroyed)).toEqual([true, false, false]);
    expect(streams.yieldOne()).toBe(mallory[1]!.socket);
    // Even again: then the oldest of the first caller found holding the most.
    expect(streams.yieldOne()).toBe(alice.socket);
    expect(streams.yieldOne()).toBe(mallory[2]!.socket);
    expect(streams.yieldOne()).toBeUndefined();
  });

  test("streams within a caller's share are kept: connections opened to push them out reach none", () => {
    const streams = new AdmittedStreams();
    const mine = [stream("a"), stream("b"), stream("c")];
    for (const s of mine) streams.watch(s, "consumer:a#1", admitted);
    expect(streams.yieldOne(3)).toBeUndefined();
    expect(streams.yieldOne(2)).toBe(mine[0]!.socket);
    expect(streams.yieldOne(2)).toBeUndefined();
    expect(mine.map((s) => s.destroyed)).toEqual([true, false, false]);
  });

  test("a stream that closed by itself is no longer counted", () => {
    const streams = new AdmittedStreams();
    const [a, b] = [stream("a"), stream("b")];
    streams.watch(a, "consumer:a#1", admitted);
    streams.watch(b, "consumer:a#1", admitted);
    a.destroy();
    expect(streams.yieldOne()).toBe(b.socket);
    expect(streams.yieldOne()).toBeUndefined();
  });
});

test("a caller's share is a 64th of the replica's connections, at least one", () => {
  expect(streamShare(8_192)).toBe(128);
  expect(streamShare(12)).toBe(1);
});

test("giving way at the bound reads the streams of the caller that gives way, not every caller's: its work does not grow with other tenants' streams", () => {
  const streams = new AdmittedStreams();
  for (let i = 0; i < 1_000; i++) streams.watch(stream(`t${i}`), `consumer:t${i}#1`, admitted);
  const mallory = [stream("m1"), stream("m2"), stream("m3")];
  for (const s of mallory) streams.watch(s, "consumer:mallory#1", admitted);
  let yielded: Socket | undefined;
  const steps = iterationSteps(() => (yielded = streams.yieldOne(1)));
  expect(yielded).toBe(mallory[0]!.socket);
  // Before, every stream was read twice at each new connection the bound met (2,005 steps here).
  expect(steps).toBeLessThanOrEqual(4);
});
