import { EventType, type RegistryEvent } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { IdempotencyIndex } from "./idempotency.js";

const at = (minutes: number) => new Date(Date.UTC(2026, 0, 1, 0, minutes)).toISOString();
const created = (key: string, minutes: number, fingerprint = "f".repeat(43)): RegistryEvent => ({
  type: EventType.consumerCreated,
  version: 1,
  data: { name: key, groups: [] },
  meta: { commandId: key, at: at(minutes), actor: "admin:ci", fingerprint },
});

describe("the idempotency index", () => {
  test("binds a key to its request's fingerprint and the version, per actor; events without a fingerprint bind nothing", () => {
    const index = new IdempotencyIndex(60 * 60_000, 10);
    index.record(created("k", 0), 7);
    index.record({ ...created("plain", 0), meta: { commandId: "plain", at: at(0) } }, 8);
    const now = Date.parse(at(1));
    expect(index.find("admin:ci", "k", now)).toEqual({ fingerprint: "f".repeat(43), version: 7, at: Date.parse(at(0)) });
    expect(index.find("admin:other", "k", now)).toBeUndefined();
    expect(index.find("admin:ci", "plain", now)).toBeUndefined();
  });

  test("keeps the id a key issuance generated", () => {
    const index = new IdempotencyIndex();
    const key = { keyId: "abcdefghijkl", salt: "salt-salt-salt-salt", digest: "d".repeat(43) };
    index.record({ type: EventType.consumerKeyIssued, version: 1, data: { name: "bot", key }, meta: created("k", 0).meta }, 3);
    expect(index.find("admin:ci", "k", Date.parse(at(0)))?.createdId).toBe("abcdefghijkl");
  });

  test("forgets keys past the window and past the bound, oldest first", () => {
    const index = new IdempotencyIndex(60 * 60_000, 3);
    index.record(created("old", 0), 1);
    index.record(created("a", 90), 2);
    expect(index.find("admin:ci", "old", Date.parse(at(90)))).toBeUndefined();
    index.record(created("b", 91), 3);
    index.record(created("c", 92), 4);
    index.record(created("d", 93), 5);
    const now = Date.parse(at(93));
    expect(["a", "b", "c", "d"].map((k) => index.find("admin:ci", k, now) !== undefined)).toEqual([false, true, true, true]);
  });
});
