import { busRequest, connectBus, flushNow, OutgoingHeaders, readHeaders, type Msg, type NatsConnection } from "@manifold/bus";
import { headers as natsHeaders, type MsgHdrs } from "@nats-io/transport-node";
import { ManifoldError } from "@manifold/contracts";
import { startNatsServer, type NatsServer } from "@manifold/nats-server";
import { createLogger } from "@manifold/telemetry";
import type { Socket } from "node:net";
import { afterAll, beforeAll, expect, test } from "vitest";

// The bus corks its socket for the rest of each event-loop turn (libs/bus/src/transport.ts):
// these check that nothing is lost, reordered or held back by it.
const logger = createLogger({ component: "test", level: "silent" });
let nats: NatsServer;
// The transport itself, apart from who may use which subject: an open server.
beforeAll(async () => void (nats = await startNatsServer({ auth: false })));
afterAll(() => nats.stop());

/** The first `count` messages on `subject`, in the order they arrived. */
function arrivals(nc: NatsConnection, subject: string, count: number): Promise<Msg[]> {
  const received: Msg[] = [];
  return new Promise((resolve) =>
    nc.subscribe(subject, {
      callback: (_e, m) => {
        received.push(m);
        if (received.length === count) resolve(received);
      },
    }),
  );
}

test("messages published in one turn, then a drain, all arrive in order", async () => {
  const receiver = await connectBus({ url: nats.url, name: "receiver", logger });
  const all = arrivals(receiver, "order.test", 500);
  await receiver.flush();
  const sender = await connectBus({ url: nats.url, name: "sender", logger });
  for (let i = 0; i < 500; i++) sender.publish("order.test", String(i));
  await sender.drain();
  const received = (await all).map((m) => Number(m.string()));
  expect(received).toEqual(Array.from({ length: 500 }, (_, i) => i));
  await receiver.close();
});

test("requests from one turn are each answered, and an idle connection still flushes", async () => {
  const responder = await connectBus({ url: nats.url, name: "responder", logger });
  responder.subscribe("double", { callback: (_e, m) => void m.respond(String(Number(m.string()) * 2)) });
  await responder.flush();
  const requester = await connectBus({ url: nats.url, name: "requester", logger });
  const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => requester.request("double", String(i), { timeout: 2_000 })));
  expect(replies.map((r) => Number(r.string()))).toEqual(Array.from({ length: 100 }, (_, i) => i * 2));
  // A lone request after a quiet period is not held back waiting for company.
  await new Promise((r) => setTimeout(r, 50));
  expect((await requester.request("double", "21", { timeout: 500 })).string()).toBe("42");
  await requester.close();
  await responder.close();
});

/** What the connection has handed its socket and the socket has not written yet (corked, or refused by the kernel). */
const unsent = (nc: NatsConnection) => (nc as unknown as { protocol: { transport: { socket: Socket } } }).protocol.transport.socket.writableLength;

test("flushNow writes at once what the turn has buffered, in order; without it the turn's messages wait for its end", async () => {
  const receiver = await connectBus({ url: nats.url, name: "receiver", logger });
  const all = arrivals(receiver, "now.test", 3);
  await receiver.flush();
  const sender = await connectBus({ url: nats.url, name: "sender", logger });
  sender.publish("now.test", "1");
  // nats.js hands its buffer to the transport at the microtask checkpoint, which corks it for the turn.
  await Promise.resolve();
  expect(unsent(sender)).toBeGreaterThan(0);
  sender.publish("now.test", "2");
  flushNow(sender);
  expect(unsent(sender)).toBe(0);
  sender.publish("now.test", "3");
  await sender.drain();
  expect((await all).map((m) => m.string())).toEqual(["1", "2", "3"]);
  await receiver.close();
});

test("the only bus request in flight is written at once, not corked; one beside others waits for the turn's end", async () => {
  const responder = await connectBus({ url: nats.url, name: "responder", logger });
  responder.subscribe("echo.now", { callback: (_e, m) => void m.respond(m.data) });
  await responder.flush();
  const nc = await connectBus({ url: nats.url, name: "requester", logger });
  const options = { timeoutMs: 2_000, target: "upstream 'x'" };
  const alone = busRequest(nc, "echo.now", "a", options);
  // Past the checkpoint where nats.js hands over its buffer: written, not corked.
  await Promise.resolve();
  expect(unsent(nc)).toBe(0);
  expect((await alone).string()).toBe("a");
  const first = busRequest(nc, "echo.now", "b", options);
  const second = busRequest(nc, "echo.now", "c", options);
  // The second goes out with whatever else the turn publishes, in one write at its end.
  await Promise.resolve();
  expect(unsent(nc)).toBeGreaterThan(0);
  expect((await Promise.all([first, second])).map((m) => m.string())).toEqual(["b", "c"]);
  await nc.close();
  await responder.close();
});

test("a bus request fails with a code saying what was missing: a responder, an answer or the bus", async () => {
  const nc = await connectBus({ url: nats.url, name: "requests", logger });
  nc.subscribe("silent", { callback: () => undefined });
  await nc.flush();
  const attempt = (subject: string) => busRequest(nc, subject, "{}", { timeoutMs: 200, target: "upstream 'x'" }).catch((e: unknown) => e);

  // More than one message may carry: refused before sending, and said so (not "the bus is down").
  const huge = await busRequest(nc, "silent", "x".repeat(2 * 1024 * 1024), { timeoutMs: 200, target: "upstream 'x'" }).catch((e: unknown) => e);
  expect(huge).toMatchObject({ code: "payload_too_large", data: { bytes: 2 * 1024 * 1024, maxBytes: 1024 * 1024 } });
  expect((huge as Error).message).toBe(
    "the request for upstream 'x' is 2097152 bytes, more than the message bus carries (1048576 bytes, the NATS servers' max_payload); raise max_payload or send less",
  );

  const nobody = await attempt("nobody.listens");
  expect(nobody).toBeInstanceOf(ManifoldError);
  expect(nobody).toMatchObject({ code: "upstream_unavailable", message: "no connector is serving upstream 'x'", data: { reason: "no_connector" } });
  expect(await attempt("silent")).toMatchObject({ code: "upstream_timeout", message: "upstream 'x' did not answer within 200 ms" });

  const pending = attempt("silent");
  await nc.close();
  expect(await pending).toMatchObject({ code: "bus_unavailable" });
  expect(await attempt("silent")).toMatchObject({ code: "bus_unavailable" });
});

test("headers sent with OutgoingHeaders arrive as nats.js reads them, and readHeaders reads them without nats.js decoding them", async () => {
  const receiver = await connectBus({ url: nats.url, name: "receiver", logger });
  const arrived = arrivals(receiver, "headers.test", 3);
  await receiver.flush();
  const sender = await connectBus({ url: nats.url, name: "sender", logger });
  const ours = new OutgoingHeaders();
  for (const [k, v] of [
    ["Manifold-Call-Id", "s-1:42"],
    ["Manifold-Call-Id", "a repeat"],
    ["Manifold-Tool", "ümlaut-tool"],
    ["Manifold-Upstream-Headers", JSON.stringify({ a: { "x-v": "a: b, c" } })],
    ["Empty", ""],
  ]) ours.append(k!, v!);
  const theirs = natsHeaders();
  theirs.append("Manifold-Tool", "echo");
  sender.publish("headers.test", "1", { headers: ours as unknown as MsgHdrs });
  sender.publish("headers.test", "2", { headers: theirs });
  sender.publish("headers.test", "3");
  await sender.drain();
  const received = await arrived;
  const keys = ["Manifold-Call-Id", "Manifold-Tool", "Manifold-Upstream-Headers", "Empty", "Missing"];
  for (const msg of received) {
    const read = readHeaders(msg);
    // The fast path read the raw block: nats.js has not decoded the headers (it caches them once it has).
    expect((msg as unknown as { _headers?: unknown })._headers).toBeUndefined();
    for (const key of keys) expect(read.get(key), `${msg.string()} ${key}`).toBe(msg.headers?.get(key) ?? "");
  }
  expect(readHeaders(received[0]!).get("Manifold-Call-Id")).toBe("s-1:42");
  expect(readHeaders(received[0]!).keys?.()).toEqual(["Manifold-Call-Id", "Manifold-Tool", "Manifold-Upstream-Headers", "Empty"]);
  await receiver.close();
});

// nats.js runs subscription callbacks inside its socket read loop: a throw there ended the loop
// ("reader closed") and the connection read nothing more until it was found stale (27 s measured,
// helper-151): one unreadable message on a subject another service may publish made a gateway deaf.
// Every callback on a bus connection is guarded: the one message is dropped, logged by subject and
// error name only (a JSON error's message quotes the bytes it read).
test("attack: a subscription callback that throws, or rejects, loses its message and nothing else", async () => {
  const lines: string[] = [];
  const logged = createLogger({ component: "test", level: "info", destination: { write: (line: string) => void lines.push(line) } });
  const nc = await connectBus({ url: nats.url, name: "guarded", logger: logged });
  const handled: string[] = [];
  nc.subscribe("guard.test", {
    callback: (_e, m) => {
      const text = m.string();
      if (text === "throws") JSON.parse("secret-bytes-not-json");
      if (text === "rejects") return void Promise.reject(new TypeError("secret-bytes")).catch(() => undefined);
      handled.push(text);
    },
  });
  nc.subscribe("guard.async", {
    callback: (async (_e: unknown, m: Msg) => {
      if (m.string() === "rejects") throw new RangeError("secret-bytes");
      handled.push(`async ${m.string()}`);
    }) as unknown as (e: unknown, m: Msg) => void,
  });
  nc.subscribe("guard.echo", { callback: (_e, m) => void m.respond(m.data) });
  await nc.flush();
  const sender = await connectBus({ url: nats.url, name: "sender", logger });
  for (const text of ["throws", "first", "throws", "second"]) sender.publish("guard.test", text);
  sender.publish("guard.async", "rejects");
  sender.publish("guard.async", "third");
  await sender.flush();
  await expect.poll(() => handled, { timeout: 2_000 }).toEqual(["first", "second", "async third"]);
  // The receiving connection still reads: a request through it is answered.
  expect((await sender.request("guard.echo", "ping", { timeout: 2_000 })).string()).toBe("ping");
  expect(lines.filter((l) => l.includes("handler threw")).length).toBeGreaterThan(0);
  expect(lines.join("\n")).toContain("SyntaxError");
  expect(lines.join("\n")).not.toContain("secret-bytes");
  await Promise.all([nc.close(), sender.close()]);
});
