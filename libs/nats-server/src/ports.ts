import { readFileSync } from "node:fs";
import { createServer, connect, type Server } from "node:net";

/**
 * Ports are chosen below the kernel's ephemeral range. A port the kernel hands out (`listen(0)`)
 * is free only until it is closed: between that and the child's bind, any outgoing connection of
 * a busy test run may take it as its local port (CI saw nats-server fail with "address already in
 * use" exactly so). Ports below the range are never given to outgoing connections, so the only
 * competitors are other `freePort` callers, which pick at random and skip what this process handed out.
 */
const LOWEST = 10_000;
/**
 * Ports fetch refuses to dial ("bad port", the WHATWG list; 10080 is the only one above `LOWEST`):
 * a readiness probe or an MCP client built on fetch could never reach a service given one. CI saw
 * `manifold up` wait out its 120 s for a gateway that was listening on 10080.
 */
const FETCH_BLOCKED = new Set([10_080]);
const EPHEMERAL_LOW = ephemeralLow();
const handedOut = new Set<number>();

function ephemeralLow(): number | undefined {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > LOWEST + 1_000 ? low : undefined;
  } catch {
    return undefined; // not Linux: the kernel's own choice below
  }
}

function listen(server: Server, port: number, host: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    server.once("error", () => resolve(undefined));
    server.listen(port, host, () => {
      const address = server.address();
      resolve(typeof address === "object" && address ? address.port : undefined);
    });
  });
}

/** Binds a free port and keeps it bound: the caller closes the server once every port is chosen. */
async function holdFreePort(host: string): Promise<{ port: number; server: Server }> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const candidate = EPHEMERAL_LOW === undefined ? 0 : LOWEST + Math.floor(Math.random() * (EPHEMERAL_LOW - LOWEST));
    if (handedOut.has(candidate) || FETCH_BLOCKED.has(candidate)) continue;
    const server = createServer();
    const port = await listen(server, candidate, host);
    if (port !== undefined) {
      handedOut.add(port);
      return { port, server };
    }
    server.close();
  }
  throw new Error(`no free port on ${host}`);
}

/** `count` distinct free ports, all held at once while choosing, so none is handed out twice. */
export async function freePorts(count: number, host = "127.0.0.1"): Promise<number[]> {
  const held: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const { port, server } = await holdFreePort(host);
      held.push(server);
      ports.push(port);
    }
    return ports;
  } finally {
    await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
  }
}

export async function freePort(host = "127.0.0.1"): Promise<number> {
  const [port] = await freePorts(1, host);
  return port!;
}

export function portIsOpen(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host });
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
  });
}
