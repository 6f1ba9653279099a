import { CommandType, EventType, type RegistryEvent } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { discovered, echo, failure, given, meta, registered, selection, vsCreated, when } from "./decideFixtures.spec.js";

describe("set-interactions", () => {
  const catalog = () => given(registered("a"), discovered("a", echo), vsCreated("vs", selection("a", echo)));
  const all = { elicitation: true, sampling: true, roots: true };

  test("records the whole setting, and the projection serves it", () => {
    const state = catalog();
    const events = when(state, { type: CommandType.setInteractions, name: "vs", interactions: all })();
    expect(events).toEqual([{ type: EventType.virtualServerInteractionsSet, version: 1, data: { name: "vs", interactions: all } }]);
    state.apply({ ...events[0]!, meta } as RegistryEvent, state.sequence + 1);
    expect(state.virtualServer("vs")?.interactions).toEqual(all);
    expect(when(state, { type: CommandType.setInteractions, name: "vs", interactions: all })()).toEqual([]);
  });

  test("the defaults on a virtual server that never set them are a no-op", () => {
    expect(when(catalog(), { type: CommandType.setInteractions, name: "vs", interactions: { elicitation: true, sampling: false, roots: false } })()).toEqual([]);
  });

  test("an unknown virtual server is not_found", () => {
    expect(failure(when(catalog(), { type: CommandType.setInteractions, name: "nope", interactions: all })).code).toBe("not_found");
  });
});
