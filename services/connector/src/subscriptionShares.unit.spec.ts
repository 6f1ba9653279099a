import { describe, expect, test } from "vitest";
import { iterationSteps } from "../../../test/helpers/iterationSteps.js";
import { SubscriptionShares } from "./subscriptionShares.js";

describe("SubscriptionShares", () => {
  test("past the limit the caller holding the most lets go of its oldest URI: another caller's stays", () => {
    const shares = new SubscriptionShares(() => 100);
    expect(shares.hold("victim", "doc://mine")).toEqual([]);
    const released: string[] = [];
    for (let i = 0; i < 300; i++) released.push(...shares.hold("attacker", `doc://item/${i}`));
    expect(shares.has("doc://mine")).toBe(true);
    expect(released).toEqual(Array.from({ length: 201 }, (_, i) => `doc://item/${i}`));
    expect(shares.has("doc://item/201")).toBe(true);
    // The victim's next subscription makes room from the attacker's share, not its own.
    expect(shares.hold("victim", "doc://mine-too")).toEqual(["doc://item/201"]);
    expect(shares.has("doc://mine")).toBe(true);
  });

  test("a URI two callers hold is let go only when neither holds it; subscribing again makes it the newest", () => {
    const shares = new SubscriptionShares(() => 3);
    shares.hold("a", "doc://shared");
    shares.hold("b", "doc://shared");
    shares.hold("a", "doc://a1");
    shares.hold("a", "doc://shared");
    // a holds [a1, shared], b holds [shared]: three distinct URIs would be a2 too, within the limit.
    expect(shares.hold("a", "doc://a2")).toEqual([]);
    // A fourth: a (largest) lets go of a1, its oldest.
    expect(shares.hold("b", "doc://b1")).toEqual(["doc://a1"]);
    // a lets go of shared next, which b still holds (no room made), then of a2.
    expect(shares.hold("a", "doc://a3")).toEqual(["doc://a2"]);
    expect(shares.has("doc://shared")).toBe(true);
  });

  test("a caller holds a URI while any of its holders (listen streams) does; one releasing never drops another caller's", () => {
    const shares = new SubscriptionShares(() => 10);
    shares.hold("a", "doc://x", "stream-1");
    shares.hold("a", "doc://x", "stream-2");
    shares.hold("b", "doc://x", "stream-3");
    // Another caller's holder, and one never held, release nothing.
    expect(shares.release("a", "doc://x", "stream-3")).toBe(false);
    expect(shares.release("a", "doc://x", "stream-1")).toBe(false);
    expect(shares.release("a", "doc://x", "stream-2")).toBe(false);
    expect(shares.has("doc://x")).toBe(true);
    expect(shares.release("b", "doc://x", "stream-3")).toBe(true);
    expect(shares.has("doc://x")).toBe(false);
    // A holder that never lets go (a 2025 session's, "") keeps it past a stream's release.
    shares.hold("a", "doc://y");
    shares.hold("a", "doc://y", "stream-4");
    expect(shares.release("a", "doc://y", "stream-4")).toBe(false);
    expect(shares.has("doc://y")).toBe(true);
  });

  test("a caller whose subscription failed no longer holds it; a limit smaller than the callers refuses the newest", () => {
    const shares = new SubscriptionShares(() => 1);
    shares.hold("a", "doc://a");
    expect(shares.release("a", "doc://a")).toBe(true);
    expect(shares.has("doc://a")).toBe(false);
    expect(shares.hold("a", "doc://a")).toEqual([]);
    // b's share is as large as a's: the first largest (a) lets go.
    expect(shares.hold("b", "doc://b")).toEqual(["doc://a"]);
  });

  test("making room past the limit reads the share of the caller that gives way, not every caller's: its work does not grow with other callers", () => {
    const shares = new SubscriptionShares(() => 1_000);
    for (let i = 0; i < 900; i++) shares.hold(`caller-${i}`, `doc://c/${i}`);
    for (let i = 0; i < 100; i++) shares.hold("attacker", `doc://a/${i}`);
    let released: string[] = [];
    const steps = iterationSteps(() => (released = shares.hold("attacker", "doc://a/100")));
    expect(released).toEqual(["doc://a/0"]);
    // Before, every caller's share was read on each subscription past the limit (904 steps here).
    expect(steps).toBeLessThanOrEqual(4);
  });
});
