import { ManifoldError } from "@manifold/contracts";
import { IncomingMessage } from "node:http";
import { Socket } from "node:net";
import { describe, expect, test } from "vitest";
import { LargeBodies, MAX_LARGE_BODIES } from "./largeBodies.js";

const alice = { id: "consumer:alice", consumer: "alice", groups: [] };
const bob = { id: "consumer:bob", consumer: "bob", groups: [] };
/** A request whose headers have arrived and whose body has not. */
const request = (headers: Record<string, string>) => Object.assign(new IncomingMessage(new Socket()), { headers });
const large = () => request({ "content-length": String(1024 * 1024) });

describe("large request bodies arriving per caller", () => {
  test("the caller's next large body past the bound is refused; small bodies and other callers are not counted", () => {
    const bodies = new LargeBodies();
    for (let i = 0; i < MAX_LARGE_BODIES; i++) bodies.take(large(), alice);
    expect(() => bodies.take(large(), alice)).toThrow(expect.objectContaining({ code: "too_many_calls" }) as ManifoldError);
    // A chunked body's length is not announced: it counts as large.
    expect(() => bodies.take(request({ "transfer-encoding": "chunked" }), alice)).toThrow(expect.objectContaining({ code: "too_many_calls" }) as ManifoldError);
    expect(() => bodies.take(request({ "content-length": String(64 * 1024) }), alice)).not.toThrow();
    expect(() => bodies.take(request({}), alice)).not.toThrow();
    expect(() => bodies.take(large(), bob)).not.toThrow();
  });

  test("a body read to its end, or a request gone, gives its place back", async () => {
    const bodies = new LargeBodies();
    const held = Array.from({ length: MAX_LARGE_BODIES }, () => large());
    for (const r of held) bodies.take(r, alice);
    held[0]!.emit("close");
    held[1]!.destroy();
    await new Promise((r) => setImmediate(r));
    bodies.take(large(), alice);
    bodies.take(large(), alice);
    expect(() => bodies.take(large(), alice)).toThrow(expect.objectContaining({ code: "too_many_calls" }) as ManifoldError);
  });
});
