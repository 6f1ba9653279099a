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
});
