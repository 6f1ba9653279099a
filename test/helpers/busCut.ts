import { createConnection, createServer, type Socket } from "node:net";

/** A TCP relay to a nats-server that can cut off one client by its connection name, leaving the server and the other clients up. */
export interface BusCut extends AsyncDisposable {
  /** `nats://127.0.0.1:<relay port>`: give it to the services as `NATS_URL`. */
  readonly url: string;
  /** Drops the connections whose CONNECT names `name`, and refuses every new connection until `restore`. */
  cut(name: string): void;
  restore(): void;
  close(): Promise<void>;
}

/** Relays to `127.0.0.1:<natsPort>`, dialled afresh per connection (so a restarted server is reached again). */
export async function busCut(natsPort: number): Promise<BusCut> {
  let cutting: string | undefined;
  const named = new Map<Socket, string>();
  const relay = createServer((client) => {
    // While one is cut off, a new connection is closed at once, as a refused one would be: closed
    // later, after its CONNECT, nats.js waited out its 20 s connect timeout before trying again.
    // Only the one cut off dials meanwhile: the others' connections stay up.
    if (cutting !== undefined) return void client.destroy();
    const server = createConnection({ host: "127.0.0.1", port: natsPort });
    const end = () => {
      named.delete(client);
      client.destroy();
      server.destroy();
    };
    client.on("data", (chunk: Buffer) => {
      // A client's first message is its CONNECT, whose JSON names it.
      const name = named.has(client) ? undefined : /"name":"([^"]*)"/.exec(chunk.toString("latin1"))?.[1];
      if (name !== undefined) named.set(client, name);
      server.write(chunk);
    });
    server.pipe(client);
    client.on("error", end).on("close", end);
    server.on("error", end).on("close", end);
  });
  await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
  const close = async () => {
    for (const socket of named.keys()) socket.destroy();
    relay.close();
    await new Promise((r) => setImmediate(r));
  };
  return {
    url: `nats://127.0.0.1:${(relay.address() as { port: number }).port}`,
    cut: (name) => {
      cutting = name;
      for (const [socket, n] of named) if (n === name) socket.destroy();
    },
    restore: () => (cutting = undefined),
    close,
    [Symbol.asyncDispose]: close,
  };
}
