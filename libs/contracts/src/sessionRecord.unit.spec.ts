import { describe, expect, test } from "vitest";
import { MAX_SESSION_HOLDERS, MAX_SESSION_SUBSCRIPTIONS, SessionChanged, SessionRecord } from "./sessionRecord.js";

const record = { virtualServer: "vs", environment: "default", principalId: "consumer:alice", initialize: { jsonrpc: "2.0", id: 0, method: "initialize" } };
const notice = (state: unknown, extra: Record<string, unknown> = {}) => ({ id: "5f0c2b1e-8d7a-4c7e-9d2a-1b2c3d4e5f60", revision: 7, state, holders: ["a1", "b2"], ...extra });

describe("a session's record and change notice, read back from the bus", () => {
  test("a record without state (as every gateway wrote it before) and one with a level and subscriptions parse", () => {
    expect(SessionRecord.safeParse(record).success).toBe(true);
    expect(SessionRecord.safeParse({ ...record, logLevel: "warning", subscriptions: ["a+demo://x"] }).success).toBe(true);
  });

  test.each<[string, unknown]>([
    ["an unknown level", { ...record, logLevel: "verbose" }],
    [`more than ${MAX_SESSION_SUBSCRIPTIONS} subscriptions`, { ...record, subscriptions: Array.from({ length: MAX_SESSION_SUBSCRIPTIONS + 1 }, (_, i) => `a+demo://${i}`) }],
    ["a URI beyond 4,096 characters", { ...record, subscriptions: [`a+demo://${"x".repeat(4_096)}`] }],
    ["an empty URI", { ...record, subscriptions: [""] }],
    ["a key no gateway writes", { ...record, isAdmin: true }],
    ["no principal", { ...record, principalId: undefined }],
  ])("a record with %s is no session", (_name, value) => {
    expect(SessionRecord.safeParse(value).success).toBe(false);
  });

  test.each<[string, unknown]>([
    ["a session id that is not one", notice({}, { id: "../../etc" })],
    ["a revision that is not a positive integer", notice({}, { revision: 0 })],
    ["a state with more than the cap", notice({ subscriptions: Array.from({ length: MAX_SESSION_SUBSCRIPTIONS + 1 }, (_, i) => `a+demo://${i}`) })],
    ["a state carrying more than state", notice({ virtualServer: "elsewhere" })],
    [`more than ${MAX_SESSION_HOLDERS} holders`, notice({}, { holders: Array.from({ length: MAX_SESSION_HOLDERS + 1 }, (_, i) => `r${i}`) })],
    ["a holder that is no replica id", notice({}, { holders: ["gateway.>"] })],
  ])("a change notice with %s is ignored", (_name, value) => {
    expect(SessionChanged.safeParse(value).success).toBe(false);
  });

  test("a well-formed notice parses", () => {
    expect(SessionChanged.parse(notice({ logLevel: "error", subscriptions: ["a+demo://x"] }))).toMatchObject({ revision: 7, state: { logLevel: "error" } });
  });
});
