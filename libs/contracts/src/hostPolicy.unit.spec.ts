import { describe, expect, test } from "vitest";
import { hostPolicy, refusal } from "./hostPolicy.js";

const code = (policy: ReturnType<typeof hostPolicy>, host: string | undefined, origin?: string) => refusal(policy, host, origin)?.code ?? "allowed";

describe("Host and Origin validation", () => {
  const loopback = hostPolicy("127.0.0.1", undefined, undefined, "GATEWAY");

  test.each([
    ["localhost:8080", undefined, "allowed"],
    ["127.0.0.1:1234", undefined, "allowed"],
    ["[::1]:80", undefined, "allowed"],
    ["LOCALHOST", undefined, "allowed"],
    ["evil.example:8080", undefined, "host_not_allowed"],
    ["127.0.0.1.evil.example", undefined, "host_not_allowed"],
    [undefined, undefined, "host_not_allowed"],
    ["127.0.0.1:8080", "http://127.0.0.1:8080", "allowed"],
    ["127.0.0.1:8080", "http://evil.example", "origin_not_allowed"],
    ["127.0.0.1:8080", "http://127.0.0.1:9999", "origin_not_allowed"],
    ["127.0.0.1:8080", "null", "origin_not_allowed"],
    ["127.0.0.1:abc", undefined, "host_not_allowed"],
    ["127.0.0.1:99999", undefined, "host_not_allowed"],
    ["[::1]x:1", undefined, "host_not_allowed"],
  ])("bound to loopback: Host %s, Origin %s → %s", (host, origin, expected) => {
    expect(code(loopback, host, origin)).toBe(expected);
  });

  test("bound elsewhere without a list, any host is served; a list restricts it", () => {
    expect(code(hostPolicy("0.0.0.0", undefined, undefined, "GATEWAY"), "mcp.example.com")).toBe("allowed");
    const listed = hostPolicy("0.0.0.0", "mcp.example.com, gateway.internal", undefined, "GATEWAY");
    expect(code(listed, "mcp.example.com:443")).toBe("allowed");
    expect(code(listed, "gateway.internal")).toBe("allowed");
    expect(code(listed, "other.example.com")).toBe("host_not_allowed");
    expect(code(hostPolicy("127.0.0.1", "*", undefined, "GATEWAY"), "anything")).toBe("allowed");
  });

  test("listed origins are allowed, case and trailing slash aside; * allows any", () => {
    const policy = hostPolicy("0.0.0.0", undefined, "https://App.example.com/", "GATEWAY");
    expect(code(policy, "mcp.example.com", "https://app.example.com")).toBe("allowed");
    expect(code(policy, "mcp.example.com", "https://other.example.com")).toBe("origin_not_allowed");
    expect(code(hostPolicy("0.0.0.0", undefined, "*", "GATEWAY"), "mcp.example.com", "https://other.example.com")).toBe("allowed");
  });
});
