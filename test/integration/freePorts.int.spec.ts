import { readFileSync } from "node:fs";
import { createServer, connect, type Socket } from "node:net";
import { describe, expect, it, vi } from "vitest";
import { spawnService } from "@manifold/cli";
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

  // CI: `manifold up` waited 120 s for a gateway that listened on 10080, a port fetch never dials.
  it("is never one that fetch refuses to dial", async () => {
    const [low] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    const random = vi.spyOn(Math, "random").mockReturnValueOnce((80.5 / (low! - 10_000)));
    try {
      const [port] = await freePorts(1);
      expect(random).toHaveBeenCalledTimes(2);
      expect(port).not.toBe(10_080);
    } finally {
      random.mockRestore();
    }
    await expect(fetch("http://127.0.0.1:10080/")).rejects.toMatchObject({ cause: { message: "bad port" } });
  });

  it("a service on a port fetch refuses is reported at once, not waited for", async () => {
    // A process that only stays up: what it would serve does not matter, fetch never sends a byte.
    const service = spawnService("gateway", "stays-up", [], {}, undefined, ["-e", "setTimeout(() => {}, 60_000)"]);
    try {
      const started = performance.now();
      await expect(service.ready("http://127.0.0.1:10080/readyz", 30_000)).rejects.toThrow('gateway listens on 10080, a port fetch refuses to dial ("bad port"); choose another');
      expect(performance.now() - started).toBeLessThan(5_000);
    } finally {
      await service.stop(1_000);
    }
  });
});
