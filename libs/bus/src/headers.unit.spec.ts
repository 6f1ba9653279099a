import { headers as natsHeaders, type MsgHdrs } from "@nats-io/transport-node";
import { describe, expect, test } from "vitest";
import type { Msg } from "@nats-io/transport-node";
import { BusHeader } from "@manifold/contracts";
import { OutgoingHeaders, readHeaders } from "./headers.js";

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

  test("a name found valid once is not tested again, and an invalid one is refused every time", () => {
    const hdrs = new OutgoingHeaders();
    for (let i = 0; i < 3; i++) {
      hdrs.append("Manifold-Tool", `echo${i}`);
      expect(() => hdrs.append("Bad Name", "v")).toThrow(/invalid bus header name/);
      expect(() => hdrs.append("Manifold-Tool", "a\rb")).toThrow(/line break/);
    }
    // Past the bound of remembered names, names are still checked.
    for (let i = 0; i < 300; i++) hdrs.append(`X-${i}`, "v");
    expect(() => hdrs.append("Still Bad", "v")).toThrow(/invalid bus header name/);
    expect(hdrs.get("Manifold-Tool")).toBe("echo0");
  });
});

describe("readHeaders on a header block as nats.js 3.x keeps it", () => {
  /** A message whose first bytes are `block` (nats.js 3.x: `_rdata`, and the block's length in `_msg.hdr`). */
  const received = (block: string): Msg => {
    const bytes = Buffer.from(`${block}payload`, "utf8");
    return { _rdata: new Uint8Array(bytes), _msg: { hdr: Buffer.byteLength(block) } } as unknown as Msg;
  };
  /** The reading before lines were read in place: split, then each line's first colon, value trimmed. */
  const reference = (block: string): Map<string, string> => {
    const values = new Map<string, string>();
    const lines = block.split("\r\n");
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i]!.indexOf(":");
      if (colon < 0) continue;
      const key = lines[i]!.slice(0, colon);
      if (!values.has(key)) values.set(key, lines[i]!.slice(colon + 1).trim());
    }
    return values;
  };
  const blocks = [
    "NATS/1.0\r\nManifold-Call-Id: s-1:42\r\nManifold-Tool: echo\r\nManifold-Call-Id: later\r\n\r\n",
    "NATS/1.0 503\r\n\r\n",
    "NATS/1.0\r\n",
    "NATS/1.0",
    "NATS/1.0\r\nno colon here\r\nA: 1\r\nnone either\r\nB:2:3\r\n:empty name\r\nC:\r\nD:   \r\n",
    "NATS/1.0\r\nTabs:\t v \t\r\nNbsp: \u00a0v\u00a0\r\nLs:\u2028v\r\nBom:\ufeffv\r\nU: ü — €\r\nLone: a\rb\nc\n\r\n",
    "NATS/1.0\r\nLast: no line end",
    `NATS/1.0\r\n${"x\r\n".repeat(50)}K: v\r\n\r\n`,
    // Names that are each other's prefixes, of one length and last character, a repeat after them: each answers its own first value.
    "NATS/1.0\r\nManifold-Tall-Id: other\r\nManifold-Call-Id-X: no\r\nManifold-Call-Id: yes\r\nManifold-Call: short\r\nManifold-Call-Id: later\r\nmanifold-call-id: case\r\n\r\n",
  ];
  test.each(blocks)("%j: the values the split reading gave", (block) => {
    const headers = readHeaders(received(block));
    const expected = reference(block);
    for (const [key, value] of expected) expect(headers.get(key)).toBe(value);
    expect(headers.keys?.()).toEqual([...expected.keys()]);
    expect(headers.get("Missing")).toBe("");
    // A name one character short, or one longer, is another name.
    for (const key of expected.keys()) {
      for (const other of [key.slice(0, -1), `${key}-`]) expect(headers.get(other)).toBe(expected.get(other) ?? "");
    }
  });

  test("every bus header, alone or beside the others, answers its own value; every name it does not carry answers none (names sharing a bit included)", () => {
    const names = Object.values(BusHeader);
    const sets = [names, ...names.map((name) => [name]), names.filter((_, i) => i % 2 === 0), names.filter((_, i) => i % 3 === 1)];
    for (const carried of sets) {
      const headers = readHeaders(received(`NATS/1.0\r\n${carried.map((name) => `${name}: v-${name}\r\n`).join("")}\r\n`));
      for (const name of names) expect(headers.get(name), `${name} of ${carried.join(",")}`).toBe(carried.includes(name) ? `v-${name}` : "");
    }
  });

  test("attack: 200,000 lines without a colon and one with it at the end are read in linear time", () => {
    const block = `NATS/1.0\r\n${"x\r\n".repeat(200_000)}K: v\r\n\r\n`;
    const started = performance.now();
    expect(readHeaders(received(block)).get("K")).toBe("v");
    // Quadratic (a colon searched to the end from every line) took minutes; linear, milliseconds.
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  test("attack: 200,000 header lines, and every name a call reads looked up in them, in linear time", () => {
    const block = `NATS/1.0\r\n${"Manifold-Call-Ix: v\r\n".repeat(200_000)}Manifold-Call-Id: last\r\n\r\n`;
    const started = performance.now();
    const headers = readHeaders(received(block));
    expect(headers.get("Manifold-Call-Id")).toBe("last");
    for (let i = 0; i < 20; i++) expect(headers.get(`Manifold-Missing-${i}`)).toBe("");
    expect(headers.keys?.()).toEqual(["Manifold-Call-Ix", "Manifold-Call-Id"]);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});
