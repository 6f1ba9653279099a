import type { ServiceProcess } from "@manifold/cli";
import type { NatsServer } from "@manifold/nats-server";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { KEY_ENV } from "../helpers/askStack.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { callBig, lagProbe, tally, type CallOutcome } from "../helpers/largeAnswers.js";
import { spawnConnector, spawnGateways } from "../helpers/replicas.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// helper-168: one tenant's large answers stall the event loop of the replicas they pass through
// (each MB read, copied and written), and heartbeats sent in time waited behind them in the
// gateway's socket. The requester judged a connector's silence on what it had read by then, and the
// own bus's PONG (queued behind the same megabytes) within 750 ms: other tenants' honest calls failed
// as `upstream_unavailable/connector_lost` (processes of their own) or `bus_unavailable/bus_unresponsive`
// (one process). Silence is now judged after a PONG: on what the bus has delivered.
const LARGE = 48;
const LARGE_BYTES = 4_000_000;
const SPACING_MS = 20;
/** Tenant B's calls in flight at a time, each small. */
const SMALL_LOOPS = 4;
/** Failures that judge a connector or the bus lost. */
const LIVENESS = ["upstream_unavailable/connector_lost", "bus_unavailable/bus_unresponsive"];

/** Tenant A's large calls, `SPACING_MS` apart and each read at once, while tenant B keeps calling small; both tallied. */
async function flood(url: string, keys: Record<string, string>, tool: string) {
  let flooding = true;
  const small: CallOutcome[] = [];
  const smallLoops = Promise.all(
    Array.from({ length: SMALL_LOOPS }, async () => {
      while (flooding) small.push(await callBig(url, keys.b!, tool, 1_000));
    }),
  );
  const calls: Promise<CallOutcome>[] = [];
  for (let i = 0; i < LARGE; i++) {
    calls.push(callBig(url, keys.a!, tool, LARGE_BYTES));
    await sleep(SPACING_MS);
  }
  const large = await Promise.all(calls);
  flooding = false;
  await smallLoops;
  return { large: tally(large), small: tally(small), slowestSmallMs: Math.max(...small.map((o) => o.ms)) };
}

/** A nats-server carrying answers of 4 MB, counting the connections it drops as slow consumers. */
async function startLargeNats() {
  let slowConsumers = 0;
  const nats = await startNats({ extraConfig: ["max_payload: 8MB"], onLog: (line) => void (line.includes("Slow Consumer") && slowConsumers++) });
  return { nats, slowConsumers: () => slowConsumers };
}

describe("one tenant's large answers, gateway and connector in processes of their own", () => {
  let nats: NatsServer;
  let stack: Stack;
  let upstream: RecordingUpstream;
  let connector: ServiceProcess & { port: number };
  let gateways: Awaited<ReturnType<typeof spawnGateways>>;
  let keys: Record<string, string>;
  let tool: string;

  beforeAll(async () => {
    ({ nats } = await startLargeNats());
    [stack, upstream] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV }, { connector: false }), startRecordingUpstream()]);
    connector = await spawnConnector(nats, "c1", "rec");
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: upstream.url } });
    tool = (await createVirtualServer(stack, "calls", [{ upstream: "rec", tool: "big" }]))["rec/big"]!;
    keys = await grantedConsumers(stack, "calls", ["a", "b"]);
    gateways = await spawnGateways(nats, { GATEWAY_AUTH: "required", ...KEY_ENV });
  }, 120_000);

  afterAll(async () => {
    await gateways?.stop();
    await connector?.stop();
    await stack?.close();
    await upstream?.close();
    await nats?.stop();
  });

  test("48 answers of 4 MB flow beside another tenant's small calls, and nothing is blamed on the bus", { timeout: 120_000 }, async () => {
    const port = gateways.ports[0]!;
    const url = `http://127.0.0.1:${port}/mcp/calls`;
    expect((await callBig(url, keys.b!, tool, 1_000)).ok).toBe(true);
    const gatewayLag = lagProbe(`http://127.0.0.1:${port}/healthz`);
    const connectorLag = lagProbe(`http://127.0.0.1:${connector.port}/healthz`);
    const outcome = await flood(url, keys, tool);
    const [gateway, connectorMs] = [await gatewayLag.stop(), await connectorLag.stop()];
    console.log(
      `[measure] processes of their own, ${LARGE} × ${LARGE_BYTES / 1e6} MB ${SPACING_MS} ms apart: tenant A ${JSON.stringify(outcome.large)}; ` +
        `tenant B ${JSON.stringify(outcome.small)} (slowest ${outcome.slowestSmallMs} ms); /healthz answered in at most ${gateway.maxMs} ms by the gateway, ${connectorMs.maxMs} ms by the connector`,
    );
    // Before: tenant B 4-5 of 24-28 failed upstream_unavailable/connector_lost in every run, tenant A 7-14 of 48;
    // /healthz up to 0.95-1.9 s. After: tenant B none in 7 of 11 runs, 1-2 in the others; what still fails is the
    // connector's own stall (its /healthz up to 1-2.7 s on this shared machine; beats stop past ~1.25 s), open: docs/operations.md.
    // So this shape asserts that nothing is blamed on the bus, and the one-process shape below that no
    // call is judged lost on beats the bus had delivered.
    for (const codes of [outcome.small, outcome.large]) {
      expect(Object.keys(codes).filter((code) => !["ok", "answers_unread", "upstream_unavailable/connector_lost"].includes(code))).toEqual([]);
    }
    expect(outcome.small.ok).toBeGreaterThan(0);
  });
});

describe("one tenant's large answers, gateway, connector and upstream in one process", () => {
  let nats: NatsServer;
  let slowConsumers: () => number;
  let stack: Stack;
  let upstream: RecordingUpstream;
  let keys: Record<string, string>;
  let tool: string;

  beforeAll(async () => {
    ({ nats, slowConsumers } = await startLargeNats());
    [stack, upstream] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV }), startRecordingUpstream()]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: upstream.url } });
    tool = (await createVirtualServer(stack, "calls", [{ upstream: "rec", tool: "big" }]))["rec/big"]!;
    keys = await grantedConsumers(stack, "calls", ["a", "b"]);
  }, 120_000);

  afterAll(async () => {
    await stack?.close();
    await upstream?.close();
    await nats?.stop();
  });

  test("no call is judged lost with its connector or bus while 48 answers of 4 MB flow", { timeout: 120_000 }, async () => {
    const url = stack.mcpUrl("calls");
    expect((await callBig(url, keys.b!, tool, 1_000)).ok).toBe(true);
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const outcome = await flood(url, keys, tool);
    loop.disable();
    console.log(
      `[measure] one process, ${LARGE} × ${LARGE_BYTES / 1e6} MB ${SPACING_MS} ms apart: tenant A ${JSON.stringify(outcome.large)}; ` +
        `tenant B ${JSON.stringify(outcome.small)} (slowest ${outcome.slowestSmallMs} ms); event-loop delay max ${Math.round(loop.max / 1e6)} ms, ` +
        `p99 ${Math.round(loop.percentile(99) / 1e6)} ms; connections nats-server dropped as slow consumers: ${slowConsumers()}`,
    );
    // Before: tenant B 11 of 24 failed bus_unavailable/bus_unresponsive, tenant A 31 of 48. What fails here
    // now is the bus dropping this process's connection, 64 MiB behind (nats-server's max_pending; still open).
    expect(Object.keys(outcome.small).filter((code) => LIVENESS.includes(code))).toEqual([]);
    expect(Object.keys(outcome.large).filter((code) => LIVENESS.includes(code))).toEqual([]);
  });
});
