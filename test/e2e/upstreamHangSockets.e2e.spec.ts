import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { startEveryTransportUpstreams, type EveryTransportUpstreams } from "../helpers/everyTransportUpstreams.js";
import { freeze } from "../helpers/freeze.js";
import { connectHttp, eventually, type DisposableClient } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { connectionsAt, unreadConnectionsAt } from "../helpers/tcpConnections.js";

const CALL_TIMEOUT_MS = 2_000;
const PING_TIMEOUT_MS = 1_000;
/** Also how long an upstream may take to accept a notification or an answer (a POST answered 202). */
const CONNECT_TIMEOUT_MS = 3_000;
const HANG_MS = 15_000;
/** Calls at once in each round of abandoned work. */
const CALLS = 3;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A request the connector gave up on (a call or discovery that timed out, an unanswered health
 * ping) ends its HTTP connection, and so does the `notifications/cancelled` sent after it. Before,
 * neither was ended on a 2025-era Streamable HTTP or legacy SSE upstream: each held a socket (a file
 * descriptor of the connector, a connection of the upstream) until undici's 300 s headers timeout,
 * however long ago the request had been abandoned.
 */
describe("fault: an upstream that hangs", () => {
  let nats: NatsServer;
  let stack: Stack;
  let agent: DisposableClient;
  let names: Record<string, string>;
  let upstreams: EveryTransportUpstreams;

  beforeAll(async () => {
    nats = await startNats();
    [stack, upstreams] = await Promise.all([
      startStack(nats.url, {
        HEALTH_HEARTBEAT_MS: "200",
        CALL_TIMEOUT_MS: String(CALL_TIMEOUT_MS),
        HEALTH_PING_TIMEOUT_MS: String(PING_TIMEOUT_MS),
        CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
      }),
      startEveryTransportUpstreams(["esse", "ehttp", "mhttp"]),
    ]);
    await registerUpstreams(stack, ...upstreams.specs("esse", "ehttp", "mhttp"));
    names = await createVirtualServer(stack, "hangsockets", ["esse", "ehttp", "mhttp"].map((upstream) => ({ upstream, tool: "echo" })));
    agent = await connectHttp(stack.mcpUrl("hangsockets"));
  }, 60_000);

  afterAll(async () => {
    await agent?.close();
    await stack?.close();
    await upstreams?.close();
    await nats?.stop();
  });

  const echo = (upstream: string) =>
    agent.callTool({ name: names[`${upstream}/echo`]!, arguments: { message: "x" } }, undefined, { timeout: 60_000 }).then(
      () => "ok",
      (e: { data?: { code?: string } }) => e.data?.code,
    );
  const discover = (upstream: string) => stack.admin.post(`/v1/upstreams/${upstream}/discover`, {}).then((r) => r.body.discovery?.status as string);
  const health = async (u: string) => ((await stack.admin.get(`/v1/upstreams/${u}`)).body.health as { status: string }).status;

  test.each([
    ["legacy HTTP+SSE", "esse"],
    ["Streamable HTTP, 2025", "ehttp"],
    ["Streamable HTTP, 2026-07-28", "mhttp"],
  ] as const)(
    "%s: its abandoned calls, discoveries, pings and their cancellations hold no connection past their timeout",
    async (_, u) => {
      const port = upstreams.ports[u]!;
      await eventually(async () => ((await health(u)) === "up" ? true : undefined), 10_000, 100);
      const before = await connectionsAt(port);
      await freeze(upstreams.server(u));
      const samples: string[] = [];
      try {
        const frozenAt = Date.now();
        // Two rounds of abandoned work, 6 s apart; meanwhile the upstream is pinged for its health.
        for (const round of [0, 1]) {
          const [listed, ...called] = await Promise.all([discover(u), ...Array.from({ length: CALLS }, () => echo(u))]);
          expect(called).toEqual(Array(CALLS).fill("upstream_timeout"));
          expect(listed).not.toBe("ok");
          if (round === 0) await sleep(6_000 - (Date.now() - frozenAt));
        }
        expect(await health(u)).toBe("down");
        while (Date.now() - frozenAt < HANG_MS) {
          samples.push(`${(await connectionsAt(port)) - before}/${await unreadConnectionsAt(port)}`);
          await sleep(1_000);
        }
        // The last round was given up on ~7 s ago, its cancellations ~4 s ago: none of it holds a
        // connection now. What may: a health ping in flight and its cancellation, each holding a
        // request the upstream has not read; and idle sockets, holding none, that undici connects
        // again when a request is aborted (one per aborted direct call, reused by the next call and
        // closed at the pool's keep-alive timeout; one per aborted ping, closed after 4 s).
        // Before (2025 era): 17–21 more connections held here, 18–24 holding unread requests, each
        // until undici's 300 s timeout. After: 1 unread at most, 5 more at most (idle ones).
        const [held, unread] = [(await connectionsAt(port)) - before, await unreadConnectionsAt(port)];
        const seen = `connections held beyond those before the hang / holding unread requests, a second apart: ${samples.join(" ")}`;
        expect(unread, seen).toBeLessThanOrEqual(2);
        expect(held, seen).toBeLessThanOrEqual(CALLS + 3);
      } finally {
        upstreams.server(u).kill("SIGCONT");
      }
      expect(await echo(u)).toBe("ok");
      await eventually(async () => ((await health(u)) === "up" ? true : undefined), 5_000, 100);
    },
    40_000,
  );
});
