import type { Principal } from "@manifold/domain";
import { createLogger } from "@manifold/telemetry";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import type { FastifyRequest } from "fastify";
import { afterEach, describe, expect, test } from "vitest";
import { AskingTransport } from "./answerRelay.js";
import { ListNotices } from "./listNotices.js";
import { SessionTable, type SessionServer, type SessionTarget } from "./sessions.js";

const logger = createLogger({ component: "test", level: "warn", destination: { write: () => undefined } });
const target: SessionTarget = { virtualServer: "vs", created: 1, environment: "default", environmentCreated: 0 };
const INIT = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } };

/** The replica's transports, as the answer relay makes them, without a bus (nothing is relayed here). */
const answers = { asking: (options: ConstructorParameters<typeof AskingTransport>[1]) => new AskingTransport("r1", options), route: (_: string, __: unknown, body: unknown) => body };

/** A caller whose id counts its reads: the work a table does over the sessions it holds. */
let reads = 0;
const caller = (name: string): Principal => ({ consumer: name, groups: [], get id() { reads++; return `consumer:${name}#1`; } });

const sessionServer = (): SessionServer => {
  const server = new Server({ name: "gw", version: "1" }, { capabilities: { tools: {} } });
  return { server, notices: new ListNotices(server), apply: () => undefined, ended: () => undefined };
};

/** A real initialize through the SDK transport; the session's id. */
async function open(table: SessionTable, principal: Principal): Promise<string> {
  const request = { method: "POST", url: "/mcp/vs", headers: { "content-type": "application/json", accept: "application/json, text/event-stream" }, body: INIT } as unknown as FastifyRequest;
  const response = await table.open(target, principal, sessionServer(), request);
  await response.text();
  return response.headers.get("mcp-session-id")!;
}

let table: SessionTable;
afterEach(() => table.closeAll());

describe("admitting a session", () => {
  test("an initialize's admission reads no other caller's sessions: its work does not grow with the replica's", async () => {
    table = new SessionTable(logger, 60_000, { total: 1_000, perPrincipal: 3 });
    table.attach(undefined, answers);
    for (let i = 0; i < 100; i++) await open(table, caller(`tenant-${i}`));
    const own = caller("own");
    await open(table, own);
    await open(table, own);
    reads = 0;
    table.mustAdmit(own);
    // Before, every session's caller was read twice on every initialize (100 other tenants + 2 own, and the caller's own: 205 reads).
    expect(reads).toBeLessThanOrEqual(1);
    await open(table, own);
    expect(() => table.mustAdmit(own)).toThrow(expect.objectContaining({ code: "too_many_sessions" }));
  });

  test("a full replica makes room from the caller holding the most, its idlest session, without reading every session", async () => {
    table = new SessionTable(logger, 60_000, { total: 8, perPrincipal: 6 });
    table.attach(undefined, answers);
    const mallory = caller("mallory");
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await open(table, mallory));
    for (const name of ["a", "b", "c"]) await open(table, caller(name));
    expect(table.size).toBe(8);
    // Mallory's first session is used again: its second is now the idlest.
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(table.find(ids[0]!, target, mallory, sessionServer)).toBeDefined();
    reads = 0;
    table.mustAdmit(caller("d"));
    // Before, every session was read three times (twice counted, once searched for the idlest: 25 reads
    // with the caller's own); now the caller's own and the ended session's, however many the replica holds.
    expect(reads).toBeLessThanOrEqual(2);
    await new Promise((resolve) => setImmediate(resolve));
    expect(table.size).toBe(7);
    expect(table.holds(ids[1]!)).toBe(false);
    expect(ids.filter((id) => table.holds(id))).toEqual([ids[0], ids[2], ids[3], ids[4]]);
    // Mallory gives way while it holds more than one past a newcomer's none: three more times.
    for (const name of ["d", "e", "f", "g"]) {
      if (name !== "d") {
        expect(() => table.mustAdmit(caller(name))).not.toThrow();
        await new Promise((resolve) => setImmediate(resolve));
      }
      await open(table, caller(name));
    }
    expect(ids.filter((id) => table.holds(id))).toEqual([ids[0]]);
    // Every caller holds one: nobody holds more than one past a newcomer's, so the replica is full.
    expect(() => table.mustAdmit(caller("h"))).toThrow(expect.objectContaining({ code: "at_capacity" }));
  });
});
