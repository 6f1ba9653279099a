import { MAX_SESSION_SUBSCRIPTIONS, MAX_SESSION_SUBSCRIPTION_CHARS, ManifoldError, type SessionState } from "@manifold/contracts";
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

  test(`a subscription past ${MAX_SESSION_SUBSCRIPTION_CHARS} characters of URIs in all is refused with too_many_subscriptions, naming the bound; one that fits is kept`, () => {
    const long = (i: number) => `u+demo://${String(i).padEnd(4_000, "x")}`;
    const eight: SessionState = { subscriptions: Array.from({ length: 8 }, (_, i) => long(i)) };
    expect(() => changeSession(eight, { type: "subscribe", uri: long(8) })).toThrow(expect.objectContaining({ code: "too_many_subscriptions", data: { maxCharacters: MAX_SESSION_SUBSCRIPTION_CHARS } }));
    expect(changeSession(eight, { type: "subscribe", uri: "u+demo://short" })?.subscriptions).toHaveLength(9);
    // What it holds already is no new subscription, and an unsubscribe makes room.
    expect(changeSession(eight, { type: "subscribe", uri: long(0) })).toBeUndefined();
    expect(changeSession(changeSession(eight, { type: "unsubscribe", uri: long(0) })!, { type: "subscribe", uri: long(8) })?.subscriptions).toHaveLength(8);
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
