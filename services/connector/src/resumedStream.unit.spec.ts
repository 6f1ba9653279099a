import { NOTIFICATION_BYTES_PER_CALL } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { ResumedStream } from "./resumedStream.js";

describe("ResumedStream", () => {
  test("log messages held on a stream of this call alone are released at its answer, once", () => {
    const stream = new ResumedStream("m1");
    stream.sees({ method: "notifications/progress", params: { progressToken: "m1" } });
    stream.hold("a", 10);
    stream.sees({ id: "m1" });
    expect(stream.foreign).toBe(false);
    expect(stream.release()).toEqual(["a"]);
    expect(stream.release()).toEqual([]);
  });

  test("another call's answer or progress makes the stream's log messages no call's, held before or after", () => {
    for (const other of [{ id: "m2" }, { id: 7 }, { method: "notifications/progress", params: { progressToken: "m2" } }]) {
      const stream = new ResumedStream("m1");
      stream.hold("before", 10);
      stream.sees(other);
      stream.hold("after", 10);
      expect(stream.foreign).toBe(true);
      expect(stream.release()).toEqual([]);
    }
  });

  test("a request or a log message names no call; what is held is bounded", () => {
    const stream = new ResumedStream("m1");
    stream.sees({ id: "r1", method: "roots/list" });
    stream.sees({ method: "notifications/message" });
    expect(stream.foreign).toBe(false);
    for (let i = 0; i < 100; i++) stream.hold(i, 1);
    expect(stream.release()).toHaveLength(64);
    stream.hold("big", NOTIFICATION_BYTES_PER_CALL + 1);
    expect(stream.release()).toEqual([]);
  });
});
