import type { Principal } from "@manifold/domain";
import type { Logger } from "@manifold/telemetry";
import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { randomUUID } from "node:crypto";

export interface Session {
  readonly id: string;
  readonly virtualServer: string;
  /** Who opened the session; every later request must come from the same principal. */
  readonly principal: Principal;
  readonly transport: StreamableHTTPServerTransport;
  readonly server: Server;
  /** Calls answered by the fast lane, by JSON-RPC request id, so a cancellation can find them. */
  readonly calls: Map<string | number, () => void>;
  lastSeen: number;
}

/**
 * Live MCP sessions of this gateway process: created on initialize, closed on DELETE,
 * on idle expiry, or when their virtual server disappears.
 */
export class SessionTable {
  readonly #sessions = new Map<string, Session>();
  readonly #logger: Logger;
  readonly #idleMs: number;
  readonly #sweeper: NodeJS.Timeout;

  constructor(logger: Logger, idleMs: number) {
    this.#logger = logger;
    this.#idleMs = idleMs;
    this.#sweeper = setInterval(() => this.#sweep(), Math.min(idleMs, 60_000)).unref();
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** A transport whose session is registered once the client's initialize succeeds. */
  async open(virtualServer: string, principal: Principal, server: Server): Promise<StreamableHTTPServerTransport> {
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        this.#sessions.set(id, { id, virtualServer, principal, transport, server, calls: new Map(), lastSeen: Date.now() });
      },
      onsessionclosed: (id) => {
        this.#sessions.delete(id);
      },
    });
    transport.onclose = () => {
      if (transport.sessionId) this.#sessions.delete(transport.sessionId);
    };
    await server.connect(transport);
    return transport;
  }

  /** The live session with this id on this virtual server and of this principal, touched as used. */
  get(id: string, virtualServer: string, principal: Principal): Session | undefined {
    const session = this.#sessions.get(id);
    // Another principal's session is reported as unknown: its id must not be confirmed.
    if (!session || session.virtualServer !== virtualServer || session.principal.id !== principal.id) return undefined;
    session.lastSeen = Date.now();
    return session;
  }

  /** Tells every session of the virtual server that its tool list changed. */
  notifyToolsChanged(virtualServer: string): void {
    for (const session of this.#sessions.values()) {
      if (session.virtualServer !== virtualServer) continue;
      session.server.sendToolListChanged().catch((err: unknown) => this.#logger.debug({ err }, "list_changed not delivered"));
    }
  }

  async closeVirtualServer(virtualServer: string): Promise<void> {
    const closing = [...this.#sessions.values()].filter((s) => s.virtualServer === virtualServer);
    await Promise.all(closing.map((s) => this.#close(s)));
  }

  async closeAll(): Promise<void> {
    clearInterval(this.#sweeper);
    await Promise.all([...this.#sessions.values()].map((s) => this.#close(s)));
  }

  #sweep(): void {
    const cutoff = Date.now() - this.#idleMs;
    for (const session of this.#sessions.values()) if (session.lastSeen < cutoff) void this.#close(session);
  }

  async #close(session: Session): Promise<void> {
    this.#sessions.delete(session.id);
    await session.server.close().catch(() => undefined);
  }
}
