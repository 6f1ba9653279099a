import { headers as natsHeaders, type MsgHdrs } from "@nats-io/transport-node";
import { describe, expect, test } from "vitest";
import { OutgoingHeaders } from "./headers.js";

// What nats.js's publish calls on the headers it is given (not on its `MsgHdrs` type).
const encoded = (hdrs: MsgHdrs) => (hdrs as unknown as { encode(): Uint8Array }).encode();

// readHeaders reads messages nats.js received: test/integration/busTransport.int.spec.ts holds it to nats.js's own decoding.
describe("OutgoingHeaders", () => {
  const pairs: [string, string][] = [
    ["Manifold-Timeout-Ms", "60000"],
    ["Manifold-Call-Id", "s-1:42"],
    ["Manifold-Call-Id", "a repeat"],
    ["Manifold-Upstream-Headers", JSON.stringify({ github: { "x-tenant": "ü — €" } })],
    ["traceparent", " 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 "],
  ];

  test("encodes the bytes nats.js's own headers encode, and answers get like them", () => {
    const ours = new OutgoingHeaders();
    const theirs = natsHeaders();
    for (const [k, v] of pairs) {
      ours.append(k, v);
      theirs.append(k, v);
    }
    expect(Buffer.from(ours.encode()).toString("utf8")).toBe(Buffer.from(encoded(theirs)).toString("utf8"));
    for (const k of ["Manifold-Call-Id", "traceparent", "Missing"]) expect(ours.get(k)).toBe(theirs.get(k));
    ours.set("Manifold-Call-Id", "replaced");
    theirs.set("Manifold-Call-Id", "replaced");
    expect(Buffer.from(ours.encode()).toString("utf8")).toBe(Buffer.from(encoded(theirs)).toString("utf8"));
    expect(ours.keys()).toEqual(["Manifold-Timeout-Ms", "Manifold-Upstream-Headers", "traceparent", "Manifold-Call-Id"]);
  });

  test("a line break in a value, or a name that is not a header name, is refused: no header can be forged", () => {
    const hdrs = new OutgoingHeaders();
    expect(() => hdrs.append("Manifold-Tool", "echo\r\nManifold-Caller: someone-else")).toThrow(/'Manifold-Tool' holds a line break/);
    expect(() => hdrs.append("Manifold-Tool", "echo\n")).toThrow(/line break/);
    for (const name of ["", "Bad Name", "Bad:Name", "Bäd", "Bad\r\nName"]) expect(() => hdrs.append(name, "v"), name).toThrow(/invalid bus header name/);
    expect(Buffer.from(hdrs.encode()).toString("utf8")).toBe("NATS/1.0\r\n\r\n");
  });
});
