import { MAX_SESSION_SUBSCRIPTIONS, ManifoldError, type SessionState } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { changeSession, type SessionChange } from "./sessionChanges.js";

const full: SessionState = { subscriptions: Array.from({ length: MAX_SESSION_SUBSCRIPTIONS }, (_, i) => `u+demo://r/${i}`) };

describe("a 2025 session's shared state", () => {
  test.each<[string, SessionState, SessionChange, SessionState | undefined]>([
    ["a first level is set", {}, { type: "set-level", level: "warning" }, { logLevel: "warning" }],
    ["another level replaces it", { logLevel: "warning" }, { type: "set-level", level: "debug" }, { logLevel: "debug" }],
    ["the same level changes nothing", { logLevel: "info" }, { type: "set-level", level: "info" }, undefined],
    ["a subscription is added last, the level kept", { logLevel: "info", subscriptions: ["a+x://1"] }, { type: "subscribe", uri: "a+x://2" }, { logLevel: "info", subscriptions: ["a+x://1", "a+x://2"] }],
    ["a URI already subscribed changes nothing", { subscriptions: ["a+x://1"] }, { type: "subscribe", uri: "a+x://1" }, undefined],
    ["an unsubscribe removes only that URI", { subscriptions: ["a+x://1", "a+x://2"] }, { type: "unsubscribe", uri: "a+x://1" }, { subscriptions: ["a+x://2"] }],
    ["an unsubscribe of a URI never subscribed changes nothing", { subscriptions: ["a+x://1"] }, { type: "unsubscribe", uri: "a+x://9" }, undefined],
    ["a full session may still unsubscribe", full, { type: "unsubscribe", uri: "u+demo://r/0" }, { subscriptions: full.subscriptions!.slice(1) }],
    ["a full session may subscribe again to a URI it holds", full, { type: "subscribe", uri: "u+demo://r/7" }, undefined],
  ])("%s", (_name, state, change, expected) => {
    expect(changeSession(state, change)).toEqual(expected);
  });

  test("a URI longer than a record may hold is refused with invalid_arguments, even with room", () => {
    expect(() => changeSession({}, { type: "subscribe", uri: `u+demo://${"x".repeat(4_096)}` })).toThrow(expect.objectContaining({ code: "invalid_arguments" }));
  });

  test(`a subscription beyond ${MAX_SESSION_SUBSCRIPTIONS} is refused with too_many_subscriptions, naming the cap`, () => {
    const refusal = (() => {
      try {
        changeSession(full, { type: "subscribe", uri: "u+demo://r/new" });
      } catch (error) {
        return error;
      }
    })();
    expect(refusal).toBeInstanceOf(ManifoldError);
    expect(refusal).toMatchObject({ code: "too_many_subscriptions", data: { maxSubscriptions: MAX_SESSION_SUBSCRIPTIONS } });
  });
});
