import { StreamableHttpTransport } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { allowedPassthrough, checkPassthrough } from "./passthrough.js";

describe("the pass-through headers an upstream allows", () => {
  const transport = StreamableHttpTransport.parse({ type: "streamable-http", url: "https://up.example/mcp" });

  test("a registration recorded before the check still never allows a header the transport owns", () => {
    // Events replay as written; this one names Mcp-Session-Id, which an agent used to name another session upstream.
    const allowed = allowedPassthrough({ transport, options: { passthroughHeaders: ["Authorization", "Mcp-Session-Id", "host", "X-Tenant"] } });
    expect([...allowed].sort()).toEqual(["authorization", "x-tenant"]);
    expect(() => checkPassthrough("up", { "Mcp-Session-Id": "someone-elses" }, allowed)).toThrow(/'Mcp-Session-Id' may not be passed through/);
  });
});
