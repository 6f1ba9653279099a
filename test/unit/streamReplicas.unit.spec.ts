import { loadConnectorConfig } from "@manifold/connector";
import { loadGatewayConfig } from "@manifold/gateway";
import { loadRegistryConfig } from "@manifold/registry";
import { describe, expect, test } from "vitest";

// One variable for every service: streams and buckets are created with the same replica count
// whichever service starts first.
const loaders = {
  registry: (env: Record<string, string>) => loadRegistryConfig({ MANIFOLD_ADMIN_TOKEN: "a-secret-of-at-least-16-chars", ...env }),
  connector: loadConnectorConfig,
  gateway: loadGatewayConfig,
} as const;

describe.each(Object.entries(loaders))("NATS_STREAM_REPLICAS in the %s", (_name, load) => {
  test("is 1 by default and 3 on a three-node cluster", () => {
    expect(load({}).NATS_STREAM_REPLICAS).toBe(1);
    expect(load({ NATS_STREAM_REPLICAS: "3" }).NATS_STREAM_REPLICAS).toBe(3);
  });

  test.each(["0", "6", "three", "1.5"])("refuses %s naming the variable", (value) => {
    expect(() => load({ NATS_STREAM_REPLICAS: value })).toThrow(/NATS_STREAM_REPLICAS/);
  });
});
