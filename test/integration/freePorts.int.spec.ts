import { readFileSync } from "node:fs";
import { createServer, connect, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { freePort, freePorts, startNatsServer } from "@manifold/nats-server";

// CI once failed a suite's setup: nats-server could not bind the port chosen for it, because an
// outgoing connection took it as its local port between the choice and the bind.
describe("free ports for test servers", () => {
  it("are chosen below the kernel's ephemeral range, where outgoing connections never take them", async () => {
    const [low] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    const chosen = await freePorts(50);
    chosen.push(await freePort());
    expect(new Set(chosen).size).toBe(chosen.length);
    for (const port of chosen) expect(port).toBeLessThan(low!);

    // Many outgoing connections at once: none is given a chosen port.
    const server = createServer((socket) => socket.resume()).listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    const { port } = server.address() as { port: number };
    const sockets: Socket[] = await Promise.all(
      Array.from({ length: 200 }, () => new Promise<Socket>((resolve) => { const s = connect(port, "127.0.0.1", () => resolve(s)); })),
    );
    const local = new Set(sockets.map((s) => s.localPort));
    for (const s of sockets) s.destroy();
    server.close();
    expect(chosen.filter((p) => local.has(p))).toEqual([]);
  });

  it("a nats-server asked for a port that is taken fails and says so", async () => {
    const [port] = await freePorts(1);
    const squatter = createServer().listen(port, "127.0.0.1");
    await new Promise((r) => squatter.once("listening", r));
    try {
      await expect(startNatsServer({ port, auth: false })).rejects.toThrow(/address already in use/);
    } finally {
      squatter.close();
    }
  });
});
