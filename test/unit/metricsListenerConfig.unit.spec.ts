import { loadConnectorConfig } from "@manifold/connector";
import { loadGatewayConfig } from "@manifold/gateway";
import { loadRegistryConfig } from "@manifold/registry";
import { expect, test } from "vitest";

// Each service's metrics listener has its own connection bound (metricsListenerFlood.int): 64 by
// default, set by a variable of its own, and a value that is not a positive count is refused by name.
const loaders = [
  ["GATEWAY_METRICS_MAX_CONNECTIONS", (env: Record<string, string>) => loadGatewayConfig(env)],
  ["REGISTRY_METRICS_MAX_CONNECTIONS", (env: Record<string, string>) => loadRegistryConfig({ MANIFOLD_ADMIN_TOKEN: "a".repeat(20), ...env })],
  ["CONNECTOR_MAX_CONNECTIONS", (env: Record<string, string>) => loadConnectorConfig(env)],
] as const;

test.each(loaders)("%s defaults to 64 and takes a positive count", (variable, load) => {
  expect((load({}) as Record<string, unknown>)[variable]).toBe(64);
  expect((load({ [variable]: "8" }) as Record<string, unknown>)[variable]).toBe(8);
  for (const value of ["0", "-1", "many", "1.5"]) expect(() => load({ [variable]: value })).toThrow(new RegExp(variable));
});
