import { ManifoldError } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { RoundsOut } from "./roundsOut.js";

describe("RoundsOut", () => {
  test("bounds each caller on its own, and a release (once, however often called) frees one place", () => {
    const rounds = new RoundsOut(2);
    const a1 = rounds.take("a");
    rounds.take("a");
    expect(() => rounds.take("a")).toThrow(ManifoldError);
    expect(rounds.take("b")).toBeTypeOf("function");
    a1();
    a1();
    expect(rounds.of("a")).toBe(1);
    rounds.take("a");
    expect(() => rounds.take("a")).toThrow(/at most 2/);
  });

  test("a caller with nothing out is forgotten", () => {
    const rounds = new RoundsOut(1);
    rounds.take("a")();
    expect(rounds.of("a")).toBe(0);
  });

  test("bounds the bytes of the calls a caller's rounds hold, never its first round, and gives them back on release", () => {
    const rounds = new RoundsOut(256, 100);
    const big = rounds.take("a", 150);
    expect(() => rounds.take("a", 1)).toThrow(/bytes/);
    expect(rounds.take("b", 60)).toBeTypeOf("function");
    big();
    const first = rounds.take("a", 60);
    rounds.take("a", 40);
    expect(() => rounds.take("a", 1)).toThrow(/100 bytes allowed/);
    first();
    expect(rounds.take("a", 60)).toBeTypeOf("function");
  });
});
