import { loadConnectorConfig } from "@manifold/connector";
import { loadGatewayConfig } from "@manifold/gateway";
import { loadRegistryConfig } from "@manifold/registry";
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { parse, parseAllDocuments } from "yaml";

// No Docker engine or cluster runs here, so the deployment files are checked against the
// services' own configuration schemas: a renamed variable breaks this test, not a deploy.
const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), "utf8");
const loaders = { registry: loadRegistryConfig, connector: loadConnectorConfig, gateway: loadGatewayConfig } as const;
const secret = "a-secret-of-at-least-16-chars";

describe("docker-compose.yml", () => {
  const compose = parse(read("docker-compose.yml"), { merge: true }) as {
    services: Record<string, { command?: string[]; environment?: Record<string, string> }>;
  };

  test("runs NATS with JetStream, the three services, a demo upstream, and the observability stack", () => {
    expect(Object.keys(compose.services).sort()).toEqual(
      ["connector", "demo-upstream", "gateway", "grafana", "jaeger", "nats", "otel-collector", "prometheus", "registry"].sort(),
    );
    expect(read("deploy/nats/nats-single.conf")).toContain("jetstream");
    for (const name of ["registry", "connector", "gateway"]) {
      expect(compose.services[name]!.environment?.OTEL_EXPORTER_OTLP_ENDPOINT).toBe("http://otel-collector:4318");
    }
  });

  test("Prometheus scrapes every service on the port its configuration gives it", () => {
    const prometheus = parse(read("deploy/prometheus/prometheus.yml")) as { scrape_configs: { static_configs: { targets: string[] }[] }[] };
    const targets = prometheus.scrape_configs.flatMap((c) => c.static_configs.flatMap((t) => t.targets));
    for (const [name, variable] of [["gateway", "GATEWAY_PORT"], ["registry", "REGISTRY_PORT"], ["connector", "CONNECTOR_PORT"]] as const) {
      expect(targets).toContain(`${name}:${compose.services[name]!.environment![variable]}`);
    }
  });

  test.each(Object.keys(loaders) as (keyof typeof loaders)[])("gives %s a configuration its schema accepts", (name) => {
    const service = compose.services[name]!;
    expect(service.command).toContain(`services/${name}/dist/main.js`);
    const env = { ...service.environment, MANIFOLD_ADMIN_TOKEN: secret };
    expect(() => loaders[name](env)).not.toThrow();
  });
});

describe("deploy/k8s/manifold.yaml", () => {
  const docs = parseAllDocuments(read("deploy/k8s/manifold.yaml")).map((d) => d.toJSON());
  const deployments = docs.filter((d) => d.kind === "Deployment");

  test.each(Object.keys(loaders) as (keyof typeof loaders)[])("gives %s a configuration its schema accepts", (name) => {
    const deployment = deployments.find((d) => d.metadata.name === `manifold-${name}`);
    const container = deployment.spec.template.spec.containers[0];
    const env = Object.fromEntries(container.env.map((e: { name: string; value?: string }) => [e.name, e.value ?? secret]));
    expect(loaders[name](env).NATS_STREAM_REPLICAS).toBe(3);
    expect(container.readinessProbe.httpGet.path).toBe("/readyz");
  });
});

describe("deploy/grafana/manifold-dashboard.json", () => {
  test("charts only metrics the services export", () => {
    const dashboard = JSON.parse(read("deploy/grafana/manifold-dashboard.json")) as { panels: { targets: { expr: string }[] }[] };
    const used = new Set(
      dashboard.panels.flatMap((p) => p.targets.flatMap((t) => [...t.expr.matchAll(/manifold_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, "")))),
    );
    expect(used.size).toBeGreaterThan(5);
    const sources = ["services/gateway/src/callObserver.ts", "services/gateway/src/app.ts", "services/connector/src/metrics.ts", "libs/bus/src/projectionMetrics.ts"]
      .map(read)
      .join("\n");
    for (const metric of used) expect(sources, metric).toContain(`"${metric}"`);
  });
});
