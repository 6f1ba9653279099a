import { headers as natsHeaders } from "@nats-io/transport-node";
import { describe, expect, test } from "vitest";
import { readHeaders } from "./headers.js";

describe("readHeaders", () => {
  test("answers as nats.js's own get: the first value of a repeated header, '' for a missing one or no headers", () => {
    const hdrs = natsHeaders();
    hdrs.append("Manifold-Call-Id", "first");
    hdrs.append("Manifold-Call-Id", "second (a hostile repeat)");
    hdrs.append("Manifold-Tool", "echo");
    const read = readHeaders(hdrs);
    for (const key of ["Manifold-Call-Id", "Manifold-Tool", "Manifold-Missing"]) expect(read.get(key)).toBe(hdrs.get(key));
    expect(read.get("Manifold-Call-Id")).toBe("first");
    expect(readHeaders(undefined).get("Manifold-Tool")).toBe("");
  });
});
