import { loadGatewayConfig } from "@manifold/gateway";
import { expect, test } from "vitest";

const trust = (value?: string) => loadGatewayConfig(value === undefined ? {} : { GATEWAY_TRUST_PROXY: value }).GATEWAY_TRUST_PROXY;

test("GATEWAY_TRUST_PROXY is off unless set: X-Forwarded-For is ignored", () => {
  expect(trust()).toBe(false);
  expect(trust("off")).toBe(false);
  expect(trust("0")).toBe(false);
});

test("GATEWAY_TRUST_PROXY takes a hop count or proxies' addresses and CIDR ranges", () => {
  expect(trust("1")).toBe(1);
  expect(trust("10.0.0.0/8, 192.168.1.7,fd00::/8,loopback")).toEqual(["10.0.0.0/8", "192.168.1.7", "fd00::/8", "loopback"]);
});

test("GATEWAY_TRUST_PROXY refuses what is neither, and never means 'trust every peer'", () => {
  for (const value of ["true", "all", "10.0.0.0/33", "10.0.0.1/8/1", "proxy.internal", "10.0.0.1,", "1.5"]) expect(() => trust(value), value).toThrow(/GATEWAY_TRUST_PROXY/);
});
