import type { NatsServer } from "@manifold/nats-server";
import { serveModernHttp } from "../fixtures/modern-upstream.mjs";
import { grantedConsumers, registerUpstreams } from "./catalog.js";
import { startNats, startStack, type Stack } from "./stack.js";

/** The request-state key every replica shares, so rounds resume anywhere. */
export const KEY_ENV = { GATEWAY_REQUEST_STATE_KEY: "env:MANIFOLD_SECRET_STATE_KEY", MANIFOLD_SECRET_STATE_KEY: "s".repeat(48) };

export interface AskStack {
  nats: NatsServer;
  stack: Stack;
  modern: Awaited<ReturnType<typeof serveModernHttp>>;
  /** The exposed name of the 2026-07-28 fixture's eliciting `ask` tool on virtual server `shared`. */
  ask: string;
  /** API keys of `mallory` and `alice`, both granted `shared`. */
  keys: Record<string, string>;
  close(): Promise<void>;
}

/** A stack with authentication on, the 2026-07-28 fixture as upstream `modern` (call budget `budgetMs`), and its `ask` tool on `shared`. */
export async function startAskStack(env: Record<string, string>, budgetMs: number): Promise<AskStack> {
  const nats = await startNats();
  const [stack, modern] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV, ...env }), serveModernHttp()]);
  await registerUpstreams(stack, { name: "modern", transport: { type: "streamable-http", url: modern.url }, options: { callTimeoutMs: budgetMs } });
  const vs = await stack.admin.post("/v1/virtual-servers", { name: "shared", tools: [{ upstream: "modern", tool: "ask" }] });
  const keys = await grantedConsumers(stack, "shared", ["mallory", "alice"]);
  const close = async () => {
    await stack.close();
    await modern.close();
    await nats.stop();
  };
  return { nats, stack, modern, ask: vs.body.tools[0].exposedName, keys, close };
}
