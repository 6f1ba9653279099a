import type { FastifyRequest } from "fastify";
import { describe, expect, test } from "vitest";
import { webRequest } from "./webExchange.js";

const request = (host: string | undefined) => ({ method: "POST", url: "/mcp/vs?x=1", headers: { ...(host === undefined ? {} : { host }), accept: "application/json" } }) as unknown as FastifyRequest;

describe("the web Request the SDK transports read", () => {
  test("keeps the Host the request named, and its headers", () => {
    const web = webRequest(request("mcp.example.com:8443"));
    expect(web.url).toBe("http://mcp.example.com:8443/mcp/vs?x=1");
    expect(web.headers.get("host")).toBe("mcp.example.com:8443");
  });

  test.each(["127.0.0.1:99999", "127.0.0.1:abc", "[::1]x:1", "a b", "a@b", "user:pw@127.0.0.1", undefined])("a Host that makes no URL (%s) is no internal error: the request still reaches the SDK", (host) => {
    expect(webRequest(request(host)).url).toBe("http://gateway/mcp/vs?x=1");
  });
});
