import { Subjects } from "@manifold/contracts";
import type { NatsConnection } from "@nats-io/transport-node";
import { Pool } from "undici";
import { runLoad, type LoadResult } from "./load.js";
import { RawMcpSession } from "./rawMcp.js";

export interface Timing {
  warmupMs: number;
  durationMs: number;
}

/** Credentials sent to the gateway (never to the upstream): set once by the suite. */
let gatewayHeaders: Record<string, string> = {};
export const useGatewayKey = (key: string) => (gatewayHeaders = { authorization: `Bearer ${key}` });

async function openSessions(url: string, count: number): Promise<{ pool: Pool; sessions: RawMcpSession[] }> {
  const { origin, pathname } = new URL(url);
  const pool = new Pool(origin, { connections: Math.min(count, 128), keepAliveTimeout: 60_000 });
  const headers = pathname.startsWith("/mcp/") ? gatewayHeaders : {};
  const sessions = Array.from({ length: count }, () => new RawMcpSession(pool, pathname, headers));
  for (let i = 0; i < sessions.length; i += 50) await Promise.all(sessions.slice(i, i + 50).map((s) => s.initialize()));
  return { pool, sessions };
}

async function closeSessions({ pool, sessions }: { pool: Pool; sessions: RawMcpSession[] }) {
  await Promise.all(sessions.map((s) => s.close()));
  await pool.close();
}

/** tools/call through `count` sessions of `url`, each calling `tool` with a small argument. */
export async function measureCalls(url: string, tool: string, count: number, timing: Timing): Promise<LoadResult> {
  const opened = await openSessions(url, count);
  try {
    const params = { name: tool, arguments: { message: "hello, manifold" } };
    return await runLoad(count, timing.warmupMs, timing.durationMs, (i) => opened.sessions[i]!.request("tools/call", params));
  } finally {
    await closeSessions(opened);
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
export async function measureConnector(nc: NatsConnection, upstream: string, inFlight: number, timing: Timing): Promise<LoadResult> {
  const subject = Subjects.upstreamCall(upstream);
  const payload = JSON.stringify({ name: "echo", arguments: { message: "hello, manifold" } });
  return runLoad(inFlight, timing.warmupMs, timing.durationMs, async () => {
    const reply = await nc.request(subject, payload, { timeout: 10_000 });
    if (reply.headers?.get("Manifold-Error")) throw new Error(reply.string());
  });
}

/** Opens `count` sessions on the gateway and keeps them open while `measure` runs. */
export async function withOpenSessions<T>(url: string, count: number, measure: () => Promise<T>): Promise<T> {
  const opened = await openSessions(url, count);
  try {
    return await measure();
  } finally {
    await closeSessions(opened);
  }
}
