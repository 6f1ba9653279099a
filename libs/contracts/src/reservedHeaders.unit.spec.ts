import { describe, expect, test } from "vitest";
import { UpstreamRegistered } from "./events.js";
import { StreamableHttpTransport, UpstreamOptions } from "./upstream.js";

const http = { type: "streamable-http", url: "https://up.example/mcp" } as const;

describe("headers the transport owns, at registration", () => {
  test.each([
    ["a pass-through Mcp-Session-Id", () => UpstreamOptions.safeParse({ passthroughHeaders: ["Authorization", "Mcp-Session-Id"] }), "Mcp-Session-Id"],
    ["a pass-through Host", () => UpstreamOptions.safeParse({ passthroughHeaders: ["host"] }), "host"],
    ["a pass-through Mcp-Param-*", () => UpstreamOptions.safeParse({ passthroughHeaders: ["Mcp-Param-Region"] }), "Mcp-Param-Region"],
    ["a registration Content-Length", () => StreamableHttpTransport.safeParse({ ...http, headers: { "Content-Length": "0" } }), "Content-Length"],
    ["a registration Transfer-Encoding secret", () => StreamableHttpTransport.safeParse({ ...http, secretHeaders: { "Transfer-Encoding": "env:X" } }), "Transfer-Encoding"],
  ])("%s is refused, naming the header", (_what, parse, name) => {
    const result = parse();
    expect(result.success).toBe(false);
    expect(JSON.stringify(result.error?.issues)).toContain(`'${name}'`);
  });

  test("other names are accepted", () => {
    expect(UpstreamOptions.parse({ passthroughHeaders: ["Authorization", "X-Tenant"] }).passthroughHeaders).toEqual(["Authorization", "X-Tenant"]);
    expect(StreamableHttpTransport.parse({ ...http, headers: { "X-Region": "eu" } }).headers).toEqual({ "X-Region": "eu" });
  });

  test("an event recorded before the check still replays", () => {
    const event = {
      type: "upstream.registered",
      version: 1,
      data: { name: "old", transport: { ...http, headers: { Host: "h" } }, options: { passthroughHeaders: ["Mcp-Session-Id"] } },
      meta: { commandId: "c1", at: "2026-01-01T00:00:00.000Z", actor: "admin:root" },
    };
    const parsed = UpstreamRegistered.safeParse(event);
    expect(parsed.error?.issues ?? []).toEqual([]);
    expect(parsed.data?.data.options.passthroughHeaders).toEqual(["Mcp-Session-Id"]);
  });
});
