import { Subjects } from "@manifold/contracts";
import type { NatsConnection } from "@nats-io/transport-node";
import { Pool } from "undici";
import { cpuWindow, round, runLoad, sampleLoad, summarize, type LoadResult, type Sample } from "./load.js";
import { RawMcpSession } from "./rawMcp.js";
import { RawModernClient } from "./rawModern.js";

/** Which revision a lane speaks: 2025 (initialize, one session per client) or 2026-07-28 (no sessions). */
export type Era = "2025" | "2026-07-28";
type LoadClient = RawMcpSession | RawModernClient;

export interface Timing {
  warmupMs: number;
  durationMs: number;
}

/** Credentials sent to the gateway (never to the upstream): set once by the suite. */
let gatewayHeaders: Record<string, string> = {};
export const useGatewayKey = (key: string) => (gatewayHeaders = { authorization: `Bearer ${key}` });

export async function openSessions(url: string, count: number, era: Era = "2025"): Promise<{ pool: Pool; sessions: LoadClient[] }> {
  const { origin, pathname } = new URL(url);
  const pool = new Pool(origin, { connections: Math.min(count, 128), keepAliveTimeout: 60_000 });
  const headers = pathname.startsWith("/mcp/") ? gatewayHeaders : {};
  const sessions = Array.from({ length: count }, () => (era === "2025" ? new RawMcpSession(pool, pathname, headers) : new RawModernClient(pool, pathname, headers)));
  for (let i = 0; i < sessions.length; i += 50) await Promise.all(sessions.slice(i, i + 50).map((s) => s.initialize()));
  return { pool, sessions };
}

export async function closeSessions({ pool, sessions }: { pool: Pool; sessions: LoadClient[] }) {
  await Promise.all(sessions.map((s) => s.close()));
  await pool.close();
}

export type CallResult = LoadResult & { cpuUsPerCall: Record<string, number> };

export interface CallTarget {
  url: string;
  tool: string;
  /** Processes whose CPU time per call is reported (the load generator is "load"). */
  pids: Record<string, number>;
  /** The revision spoken (default 2025). */
  era?: Era;
}

/**
 * tools/call through `count` sessions of each target, each calling its tool with a small
 * argument. The targets take turns for `rounds` rounds, so that a slower stretch of this
 * shared machine falls on all of them alike rather than on whichever ran then; every other
 * round runs them in reverse order (A B C, C B A …), so a machine slowing or speeding up through
 * the lane weighs on each target alike, and neighbours in the order (the bare hops and Manifold,
 * whose ratio is the target) are measured closest together.
 */
export async function compareCalls<K extends string>(targets: Record<K, CallTarget>, count: number, timing: Timing, rounds: number): Promise<Record<K, CallResult>> {
  const entries = Object.entries(targets) as [K, CallTarget][];
  const opened = await Promise.all(entries.map(([, t]) => openSessions(t.url, count, t.era)));
  try {
    const runs = entries.map(([, t]) => ({ samples: [] as Sample[], cpu: cpuWindow({ load: "self", ...t.pids }), params: { name: t.tool, arguments: { message: "hello, manifold" } } }));
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? [...runs.keys()] : [...runs.keys()].reverse();
      for (const i of order) {
        const run = runs[i]!;
        const sessions = opened[i]!.sessions;
        run.samples.push(await sampleLoad(count, timing.warmupMs / rounds, timing.durationMs / rounds, (s) => sessions[s]!.request("tools/call", run.params), run.cpu));
      }
    }
    return Object.fromEntries(
      entries.map(([name], i) => {
        const result = summarize(count, runs[i]!.samples);
        return [name, { ...result, cpuUsPerCall: perCall(runs[i]!.cpu.usedMs(), result.calls) }];
      }),
    ) as Record<K, CallResult>;
  } finally {
    await Promise.all(opened.map(closeSessions));
  }
}

/** tools/list, one request at a time, cycling through one session per URL. */
export async function measureList(urls: string[], timing: Timing): Promise<LoadResult & { tools: number }> {
  const opened = await Promise.all(urls.map((u) => openSessions(u, 1)));
  try {
    const tools = (await opened[0]!.sessions[0]!.request("tools/list", {})).tools.length as number;
    let next = 0;
    // Time to the last byte: parsing megabytes of JSON is the client's cost, not the gateway's.
    const result = await runLoad(1, timing.warmupMs, timing.durationMs, () => opened[next++ % opened.length]!.sessions[0]!.requestBytes("tools/list", {}));
    return { ...result, tools };
  } finally {
    await Promise.all(opened.map(closeSessions));
  }
}

/** The connector alone: bus requests straight to an upstream's call subject, `inFlight` at a time. */
export async function measureConnector(nc: NatsConnection, upstream: string, inFlight: number, timing: Timing, pids: Record<string, number>): Promise<CallResult> {
  const subject = Subjects.upstreamCall(upstream);
  const payload = JSON.stringify({ name: "echo", arguments: { message: "hello, manifold" } });
  const cpu = cpuWindow({ load: "self", ...pids });
  const result = await runLoad(
    inFlight,
    timing.warmupMs,
    timing.durationMs,
    async () => {
      const reply = await nc.request(subject, payload, { timeout: 10_000 });
      if (reply.headers?.get("Manifold-Error")) throw new Error(reply.string());
    },
    cpu,
  );
  return { ...result, cpuUsPerCall: perCall(cpu.usedMs(), result.calls) };
}

const perCall = (usedMs: Record<string, number>, calls: number) =>
  Object.fromEntries(Object.entries(usedMs).map(([name, ms]) => [name, round((ms * 1000) / Math.max(1, calls), 1)]));

/** Opens `count` sessions on the gateway and keeps them open while `measure` runs. */
export async function withOpenSessions<T>(url: string, count: number, measure: () => Promise<T>): Promise<T> {
  const opened = await openSessions(url, count);
  try {
    return await measure();
  } finally {
    await closeSessions(opened);
  }
}
