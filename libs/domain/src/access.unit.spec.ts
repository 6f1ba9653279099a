import { describe, expect, test } from "vitest";
import { accessOf, anonymousPrincipal } from "./access.js";
import type { ResolvedGrant } from "@manifold/contracts";
import type { VirtualServerState } from "./state.js";

/** Grants as these tests write them: without denied prompts and resources unless they say so. */
type TestGrant = Omit<ResolvedGrant, "deniedPrompts" | "deniedResources"> & Partial<Pick<ResolvedGrant, "deniedPrompts" | "deniedResources">>;
const vs = (grants: ReadonlyMap<string, TestGrant>): VirtualServerState =>
  ({
    name: "vs",
    version: 1,
    created: 1,
    tools: new Map(),
    grants: new Map([...grants].map(([id, g]) => [id, { deniedPrompts: [], deniedResources: [], ...g }])),
    driftPolicy: "pinned",
    rejected: new Map(),
    naming: { policy: "suffix", prefixes: {} },
    deprecatedAliases: new Map(),
    environments: new Map(),
    environmentItems: new Map(),
    prompts: new Map(),
    resources: new Map(),
    resourceTemplates: new Map(),
  }) as VirtualServerState;
const alice = { consumer: "alice", groups: ["ops"], id: "consumer:alice" };
const x = { upstream: "up", tool: "x" };
const y = { upstream: "up", tool: "y" };

describe("access decisions", () => {
  test("deny unless a grant matches the consumer or one of its groups", () => {
    expect(accessOf(vs(new Map()), alice)).toBeUndefined();
    expect(accessOf(vs(new Map([["g", { grantId: "g", subject: { consumer: "bob" }, deniedTools: [] }]])), alice)).toBeUndefined();
    expect(accessOf(vs(new Map([["g", { grantId: "g", subject: { group: "ops" }, deniedTools: [] }]])), alice)).toEqual({ denied: new Set(), deniedItems: new Set(), rateLimitPerMinute: undefined });
  });
  test("a group grant matches a group the token claims or the consumer's own groups as the registry has them now", () => {
    const opsGrant = vs(new Map([["g", { grantId: "g", subject: { group: "ops" }, deniedTools: [] }]]));
    const bot = { consumer: "bot", groups: [], id: "consumer:bot" };
    expect(accessOf(opsGrant, bot)).toBeUndefined();
    expect(accessOf(opsGrant, bot, "default", ["ops"])).toBeDefined();
    expect(accessOf(opsGrant, bot, "default", ["billing"])).toBeUndefined();
  });
  test("with several grants the most generous wins: a tool is denied only when every grant denies it", () => {
    const grants = new Map([
      ["a", { grantId: "a", subject: { consumer: "alice" }, deniedTools: [x, y], rateLimitPerMinute: 10 }],
      ["b", { grantId: "b", subject: { group: "ops" }, deniedTools: [y], rateLimitPerMinute: 60 }],
    ]);
    expect(accessOf(vs(grants), alice)).toEqual({ denied: new Set(["up/y"]), deniedItems: new Set(), rateLimitPerMinute: 60 });
  });
  test("a grant limited to an environment applies there only; one without applies everywhere", () => {
    const prodOnly = vs(new Map([["p", { grantId: "p", subject: { consumer: "alice" }, deniedTools: [], environment: "prod" }]]));
    expect(accessOf(prodOnly, alice, "prod")).toBeDefined();
    expect(accessOf(prodOnly, alice, "staging")).toBeUndefined();
    expect(accessOf(prodOnly, alice)).toBeUndefined();
    const everywhere = vs(new Map([["e", { grantId: "e", subject: { consumer: "alice" }, deniedTools: [] }]]));
    expect(accessOf(everywhere, alice, "staging")).toBeDefined();
  });
  test("an anonymous grant covers only callers without credentials, and nothing else covers them", () => {
    const open = vs(new Map([["anon", { grantId: "anon", subject: { anonymous: true as const }, deniedTools: [y], rateLimitPerMinute: 30 }]]));
    expect(accessOf(open, anonymousPrincipal("127.0.0.1"))).toEqual({ denied: new Set(["up/y"]), deniedItems: new Set(), rateLimitPerMinute: 30 });
    // An authenticated caller needs a grant of its own.
    expect(accessOf(open, alice)).toBeUndefined();
    // A consumer or group grant never admits an anonymous caller, whatever groups it claims.
    const named = vs(new Map([
      ["c", { grantId: "c", subject: { consumer: "anonymous" }, deniedTools: [] }],
      ["g", { grantId: "g", subject: { group: "ops" }, deniedTools: [] }],
    ]));
    expect(accessOf(named, anonymousPrincipal("127.0.0.1"), "default", ["ops"])).toBeUndefined();
    expect(accessOf(named, { ...anonymousPrincipal("127.0.0.1"), groups: ["ops"] })).toBeUndefined();
  });
});
