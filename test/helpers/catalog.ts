import { expect } from "vitest";
import type { Stack } from "./stack.js";

export interface UpstreamSpec {
  name: string;
  transport: Record<string, unknown>;
  options?: Record<string, unknown>;
}

/** Registers upstreams (expecting discovery to succeed) and returns their discovered tool names. */
export async function registerUpstreams(stack: Stack, ...upstreams: UpstreamSpec[]): Promise<void> {
  for (const upstream of upstreams) {
    const res = await stack.admin.post("/v1/upstreams", upstream);
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
    expect(res.body.discovery?.status, JSON.stringify(res.body.discovery)).toBe("ok");
  }
}

/** Creates a virtual server and returns its exposed names by `upstream/tool`. */
export async function createVirtualServer(stack: Stack, name: string, tools: { upstream: string; tool: string }[], settings: Record<string, unknown> = {}): Promise<Record<string, string>> {
  const res = await stack.admin.post("/v1/virtual-servers", { name, tools, ...settings });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return Object.fromEntries(res.body.tools.map((t: { upstream: string; tool: string; exposedName: string }) => [`${t.upstream}/${t.tool}`, t.exposedName]));
}

/** Consumers granted the virtual server, each with an API key: name → key. */
export async function grantedConsumers(stack: Stack, virtualServer: string, names: string[]): Promise<Record<string, string>> {
  const keys: Record<string, string> = {};
  for (const name of names) {
    await stack.admin.post("/v1/consumers", { name });
    keys[name] = (await stack.admin.post(`/v1/consumers/${name}/keys`, {})).body.key;
    await stack.admin.post(`/v1/virtual-servers/${virtualServer}/grants`, { grantId: name, subject: { consumer: name } });
  }
  return keys;
}

/** The JSON-RPC error a rejected SDK call carries. */
export async function rpcError(call: Promise<unknown>): Promise<{ code: number; message: string; data?: any }> {
  return call.then(
    (value) => {
      throw new Error(`expected a JSON-RPC error, got ${JSON.stringify(value)}`);
    },
    (error: { code: number; message: string; data?: unknown }) => error,
  );
}
