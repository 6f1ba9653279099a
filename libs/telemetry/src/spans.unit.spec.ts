import { describe, expect, test } from "vitest";
import { SpanKind, traced } from "./spans.js";

describe("traced, with no tracer provider registered", () => {
  test("runs the work with a no-op span and never builds the attributes", async () => {
    let built = 0;
    const attributes = () => (built++, { "manifold.upstream": "x" });
    const result = await traced("work", SpanKind.INTERNAL, attributes, async (span) => {
      expect(span.isRecording()).toBe(false);
      return 42;
    });
    expect(result).toBe(42);
    expect(built).toBe(0);
  });

  test("a work function that throws at once yields a rejected promise, not a throw", async () => {
    const failing = () => {
      throw new Error("before any await");
    };
    let outcome: Promise<unknown> | undefined;
    expect(() => (outcome = traced("work", SpanKind.INTERNAL, {}, failing))).not.toThrow();
    await expect(outcome).rejects.toThrow("before any await");
  });
});
