import { CALL_PATH_NODE_FLAGS } from "@manifold/cli";
import { loadConnectorConfig } from "@manifold/connector";
import { loadGatewayConfig } from "@manifold/gateway";
import { BUS_ROLES, hostPolicy, refusal } from "@manifold/contracts";
import { STALE_CLIENT_LINES, deployedUsers, renderAuthorization } from "@manifold/nats-server";
import { loadRegistryConfig } from "@manifold/registry";
import { readFileSync } from "node:fs";
import { BlockList, isIPv6 } from "node:net";
import { describe, expect, test } from "vitest";
import { parse, parseAllDocuments } from "yaml";

// No Docker engine or cluster runs here, so the deployment files are checked against the
// services' own configuration schemas: a renamed variable breaks this test, not a deploy.
const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), "utf8");
const loaders = { registry: loadRegistryConfig, connector: loadConnectorConfig, gateway: loadGatewayConfig } as const;
const secret = "a-secret-of-at-least-16-chars";

/**
 * The admin port bound to every interface answers any Host unless told its names: a DNS-rebinding
 * page (its own name rebound to the registry's address) loaded the console (helper-100). Checked
 * with the registry's own policy: the names operators use are served, a foreign one is refused.
 */
function servesOnlyItsNames(env: Record<string, string | undefined>, names: string[]) {
  const policy = hostPolicy(env.REGISTRY_HOST ?? "127.0.0.1", env.REGISTRY_ALLOWED_HOSTS, env.REGISTRY_ALLOWED_ORIGINS, "REGISTRY");
  for (const name of names) expect(refusal(policy, `${name}:8081`, undefined), name).toBeUndefined();
  expect(refusal(policy, "rebound.attacker.example:8081", undefined)?.code).toBe("host_not_allowed");
}

/**
 * A workload of several replicas keeps serving through a node drain and a node's loss: a
 * PodDisruptionBudget lets a drain evict one of its pods at a time (without one, `kubectl drain`
 * of a node holding both gateway replicas evicts both at once), and its pods are spread over
 * nodes (without it the scheduler may put both replicas, or two of the three NATS nodes and so
 * JetStream's quorum, on one node). The spread is soft, so a one- or two-node cluster still schedules.
 */
function keepsServing(docs: any[], name: string) {
  const workload = docs.find((d) => (d.kind === "Deployment" || d.kind === "StatefulSet") && d.metadata.name === name);
  expect(workload.spec.replicas).toBeGreaterThan(1);
  const labels = workload.spec.selector.matchLabels;
  expect(workload.spec.template.metadata.labels).toMatchObject(labels);
  const budgets = docs.filter((d) => d.kind === "PodDisruptionBudget" && JSON.stringify(d.spec.selector?.matchLabels) === JSON.stringify(labels));
  expect(budgets.map((b) => b.apiVersion)).toEqual(["policy/v1"]);
  expect(budgets[0].spec).toEqual({ maxUnavailable: 1, selector: { matchLabels: labels } });
  expect(workload.spec.template.spec.topologySpreadConstraints).toContainEqual({
    maxSkew: 1,
    topologyKey: "kubernetes.io/hostname",
    whenUnsatisfiable: "ScheduleAnyway",
    labelSelector: { matchLabels: labels },
  });
}

describe("docker-compose.yml", () => {
  const compose = parse(read("docker-compose.yml"), { merge: true }) as {
    services: Record<string, { command?: string[]; environment?: Record<string, string>; ports?: string[] }>;
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
    // The gateway's metrics are on their own listener, never its public (published) port.
    for (const [name, variable] of [["gateway", "GATEWAY_METRICS_PORT"], ["registry", "REGISTRY_METRICS_PORT"], ["connector", "CONNECTOR_PORT"]] as const) {
      expect(targets).toContain(`${name}:${compose.services[name]!.environment![variable]}`);
    }
    expect(targets).not.toContain(`gateway:${compose.services.gateway!.environment!.GATEWAY_PORT}`);
    expect(compose.services.gateway!.ports).toEqual(["8080:8080"]);
  });

  test.each(Object.keys(loaders) as (keyof typeof loaders)[])("gives %s a configuration its schema accepts", (name) => {
    const service = compose.services[name]!;
    expect(service.command).toContain(`services/${name}/dist/main.js`);
    const env = { ...service.environment, MANIFOLD_ADMIN_TOKEN: secret };
    expect(() => loaders[name](env)).not.toThrow();
  });

  test.each(["registry", "connector"] as const)("sets %s's stdio commands explicitly: none", (name) => {
    expect(compose.services[name]!.environment?.MANIFOLD_STDIO_COMMANDS).toBe("");
  });

  test("the registry serves only the names it is reached by", () => {
    servesOnlyItsNames(compose.services.registry!.environment!, ["localhost", "127.0.0.1", "registry"]);
  });

  test("stops the gateway after its drain, and publishes only its MCP port beyond this host", () => {
    const gateway = compose.services.gateway as { stop_grace_period?: string };
    // compose's default (10 s) killed it while it drained for GATEWAY_DRAIN_MS (10 s) and closed (5 s).
    expect(Number(gateway.stop_grace_period?.replace(/s$/, ""))).toBeGreaterThan(15);
    for (const [name, service] of Object.entries(compose.services)) {
      for (const port of service.ports ?? []) if (name !== "gateway") expect(port).toMatch(/^127\.0\.0\.1:/);
    }
  });

  test.each(["connector", "gateway"] as const)("runs %s with the V8 flags npm start and the bench use", (name) => {
    expect(compose.services[name]!.command).toEqual(expect.arrayContaining([...CALL_PATH_NODE_FLAGS]));
  });

  // As the Kubernetes pods: no privilege gain through the image's setuid binaries, no capabilities,
  // a read-only image (no service writes to disk) with a small /tmp.
  test.each(["registry", "connector", "gateway", "demo-upstream"])("runs %s without privileges to gain, read-only", (name) => {
    const service = compose.services[name] as { security_opt?: string[]; cap_drop?: string[]; read_only?: boolean; tmpfs?: string[] };
    expect(service.security_opt).toContain("no-new-privileges:true");
    expect(service.cap_drop).toEqual(["ALL"]);
    expect(service.read_only).toBe(true);
    expect(service.tmpfs?.some((t) => t.startsWith("/tmp"))).toBe(true);
  });

  // Grafana's own default is admin/admin: a page that rebinds its name to 127.0.0.1 (the port
  // answers any Host) could sign in with it and read every series, or add a data source.
  test("gives Grafana an admin password of the operator's, never its default", () => {
    const grafana = compose.services.grafana!;
    expect(grafana.environment?.GF_SECURITY_ADMIN_PASSWORD).toMatch(/^\$\{GRAFANA_ADMIN_PASSWORD:\?/);
  });
});

describe("deploy/k8s/manifold.yaml", () => {
  const docs = parseAllDocuments(read("deploy/k8s/manifold.yaml")).map((d) => d.toJSON());
  const deployments = docs.filter((d) => d.kind === "Deployment");

  test.each(Object.keys(loaders) as (keyof typeof loaders)[])("gives %s a configuration its schema accepts", (name) => {
    const deployment = deployments.find((d) => d.metadata.name === `manifold-${name}`);
    const container = deployment.spec.template.spec.containers[0];
    const env = Object.fromEntries(container.env.map((e: { name: string; value?: string }) => [e.name, e.value ?? secret]));
    const config = loaders[name](env);
    expect(config.NATS_STREAM_REPLICAS).toBe(3);
    // The forced exit comes after the drain (GATEWAY_DRAIN_MS and 5 s to close), within the pod's grace.
    if ("GATEWAY_DRAIN_MS" in config) expect(deployment.spec.template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(config.GATEWAY_DRAIN_MS + 5_000);
    expect(container.readinessProbe.httpGet.path).toBe("/readyz");
  });

  test("the image builds and runs on one supported Node LTS (20 has had no security fixes since April 2026)", () => {
    const bases = [...read("Dockerfile").matchAll(/^FROM node:(\d+)-bookworm-slim/gm)].map((m) => Number(m[1]));
    expect(bases).toEqual([24, 24]);
  });

  // The image runs as `node` (1000): a secret volume's files are root's, so the seed is read through the pod's group.
  test.each(Object.keys(loaders))("runs %s as the image's user, with its seed readable by the pod's group", (name) => {
    expect(read("Dockerfile")).toMatch(/^USER node$/m);
    const spec = deployments.find((d) => d.metadata.name === `manifold-${name}`).spec.template.spec;
    expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000 });
    const mode = spec.volumes.find((v: { name: string }) => v.name === "nats-seed").secret.defaultMode as number;
    expect(mode & 0o040).toBe(0o040);
    expect(mode & 0o007).toBe(0);
  });

  // Pod Security "restricted" (the profile a hardened namespace enforces) refused every Manifold pod, and each
  // container ran with setuid binaries usable (no no_new_privs), a writable image and no memory bound: a
  // gateway flooded by callers could take its node's memory from every other pod on it.
  test.each(Object.keys(loaders))("runs %s as Pod Security's restricted profile asks, read-only, with bounded resources", (name) => {
    const spec = deployments.find((d) => d.metadata.name === `manifold-${name}`).spec.template.spec;
    expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
    expect(spec.automountServiceAccountToken).toBe(false);
    for (const container of spec.containers) {
      expect(container.securityContext, container.name).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } });
      expect(container.resources?.requests, container.name).toMatchObject({ cpu: expect.anything(), memory: expect.anything() });
      expect(container.resources?.limits?.memory, container.name).toBeDefined();
      // A read-only root still gives the process (and a stdio upstream it starts) a scratch folder.
      expect(container.volumeMounts).toContainEqual({ name: "tmp", mountPath: "/tmp" });
    }
    expect(spec.volumes).toContainEqual({ name: "tmp", emptyDir: { sizeLimit: expect.any(String) } });
  });

  test("holds no secret value: the admin token and the gateway's request-state key come from secrets created apart", () => {
    expect(docs.filter((d) => d.kind === "Secret")).toEqual([]);
    const gateway = deployments.find((d) => d.metadata.name === "manifold-gateway").spec.template.spec.containers[0];
    const env = Object.fromEntries(gateway.env.map((e: { name: string; value?: string; valueFrom?: unknown }) => [e.name, e.value ?? e.valueFrom]));
    // Two replicas without affinity: one key on both, or a 2026-07-28 retry on the other replica is refused.
    expect(env.GATEWAY_REQUEST_STATE_KEY).toBe("env:MANIFOLD_SECRET_REQUEST_STATE_KEY");
    expect(env.MANIFOLD_SECRET_REQUEST_STATE_KEY).toEqual({ secretKeyRef: { name: "manifold-gateway", key: "request-state-key" } });
    expect(env.GATEWAY_ALLOWED_HOSTS).toBeDefined();
    expect(read(".gitignore")).toMatch(/^\.env$/m);
    expect(read(".gitignore")).toMatch(/^nats-keys\/$/m);
  });

  test("the registry serves only the names it is reached by", () => {
    const container = deployments.find((d) => d.metadata.name === "manifold-registry").spec.template.spec.containers[0];
    servesOnlyItsNames(Object.fromEntries(container.env.map((e: { name: string; value?: string }) => [e.name, e.value])), ["localhost", "127.0.0.1", "manifold-registry"]);
  });

  test.each(["registry", "connector"] as const)("sets %s's stdio commands explicitly: none", (name) => {
    const container = deployments.find((d) => d.metadata.name === `manifold-${name}`).spec.template.spec.containers[0];
    expect(container.env).toContainEqual({ name: "MANIFOLD_STDIO_COMMANDS", value: "" });
  });

  test.each(deployments.map((d) => d.metadata.name as string))("keeps %s serving through a node drain and a node loss", (name) => keepsServing(docs, name));

  test.each(["connector", "gateway"] as const)("runs %s with the V8 flags npm start and the bench use", (name) => {
    const container = deployments.find((d) => d.metadata.name === `manifold-${name}`).spec.template.spec.containers[0];
    expect(container.command).toEqual(expect.arrayContaining([...CALL_PATH_NODE_FLAGS]));
  });
});

// One source of truth: the permissions deployed are the ones the code defines and the tests run under.
describe("NATS authorization in every deployment", () => {
  const rendered = renderAuthorization(deployedUsers());

  test("deploy/nats/auth.conf is what the code renders (regenerate: manifold nats auth-conf > deploy/nats/auth.conf)", () => {
    expect(read("deploy/nats/auth.conf")).toBe(rendered);
  });

  test.each(["deploy/nats/nats.conf", "deploy/nats/nats-single.conf"])("%s includes it", (path) => {
    expect(read(path)).toMatch(/^include \.\/auth\.conf$/m);
    // Client authorization comes only from auth.conf (a cluster block may hold its routes' own).
    expect(read(path)).not.toMatch(/^(authorization|accounts|no_auth_user)\b/m);
  });

  test("deploy/nats/nats-cluster.conf includes it and authenticates its routes", () => {
    const config = read("deploy/nats/nats-cluster.conf");
    expect(config).toMatch(/^include \.\/auth\.conf$/m);
    expect(config).not.toMatch(/^(authorization|accounts|no_auth_user)\b/m);
    const cluster = /^cluster \{([\s\S]*?)^\}/m.exec(config)?.[1] ?? "";
    expect(cluster).toMatch(/^ {2}authorization \{\s*user: \$NATS_CLUSTER_USER\s*password: \$NATS_CLUSTER_PASSWORD\b/m);
    expect(cluster).toMatch(/^ {2}routes: \$NATS_ROUTES$/m);
  });

  // A frozen or cut-off client (a connector replica) is dropped within seconds, not minutes, everywhere.
  test("every nats-server config drops stale clients as the tests' servers do", () => {
    const k8s = parseAllDocuments(read("deploy/k8s/nats.yaml")).map((d) => d.toJSON());
    for (const config of [read("deploy/nats/nats.conf"), read("deploy/nats/nats-single.conf"), read("deploy/nats/nats-cluster.conf"), k8s.find((d) => d.kind === "ConfigMap").data["nats.conf"]]) {
      const lines = config.split("\n").map((l: string) => l.replace(/\s+#.*$/, "").trim());
      for (const line of STALE_CLIENT_LINES) expect(lines).toContain(line);
    }
  });

  // nats-server's monitoring port needs no login and lists every connection, subscription and
  // stream: it was on every pod's network (the Kubernetes Service, the compose network).
  test("monitoring listens on loopback only, and the NATS pods run as a user, not root", () => {
    const k8s = parseAllDocuments(read("deploy/k8s/nats.yaml")).map((d) => d.toJSON());
    for (const config of [read("deploy/nats/nats.conf"), read("deploy/nats/nats-single.conf"), k8s.find((d) => d.kind === "ConfigMap").data["nats.conf"]]) {
      expect(config).toMatch(/^\s*http: 127\.0\.0\.1:8222\b/m);
      expect(config).not.toMatch(/^\s*(http_port|monitor_port)\b/m);
    }
    expect(k8s.find((d) => d.kind === "Service").spec.ports.map((p: { port: number }) => p.port)).not.toContain(8222);
    const pod = k8s.find((d) => d.kind === "StatefulSet").spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
    expect(pod.containers[0].securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } });
    // Pod Security "restricted" asks for a seccomp profile too; memory is bounded as the services' is.
    expect(pod.securityContext).toMatchObject({ seccompProfile: { type: "RuntimeDefault" } });
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.containers[0].resources?.limits?.memory).toBeDefined();
  });

  // Every cluster configuration: routes carry a password, so a process reaching 6222 cannot join.
  const routesAuthenticated = (config: string) => {
    const cluster = /^\s*cluster \{([\s\S]*?)^\s*\}/m.exec(config)?.[1] ?? "";
    expect(cluster).toMatch(/authorization \{\s*user: \$NATS_CLUSTER_USER,?\s*password: \$NATS_CLUSTER_PASSWORD\b/);
    expect(cluster).toMatch(/routes: \$NATS_ROUTES$/m);
  };
  test("deploy/nats/nats.conf and the Kubernetes cluster authenticate their routes", () => {
    routesAuthenticated(read("deploy/nats/nats.conf"));
    const docs = parseAllDocuments(read("deploy/k8s/nats.yaml")).map((d) => d.toJSON());
    routesAuthenticated(docs.find((d) => d.kind === "ConfigMap").data["nats.conf"]);
    const env = docs.find((d) => d.kind === "StatefulSet").spec.template.spec.containers[0].env.map((e: { name: string }) => e.name);
    expect(env).toEqual(expect.arrayContaining(["NATS_CLUSTER_USER", "NATS_CLUSTER_PASSWORD", "NATS_ROUTES"]));
  });

  test("deploy/k8s/nats.yaml keeps a quorum through a node drain and spreads its nodes", () => {
    keepsServing(parseAllDocuments(read("deploy/k8s/nats.yaml")).map((d) => d.toJSON()), "nats");
  });

  test("deploy/k8s/nats.yaml carries the same block, included, with the public keys from the environment", () => {
    const docs = parseAllDocuments(read("deploy/k8s/nats.yaml")).map((d) => d.toJSON());
    const config = docs.find((d) => d.kind === "ConfigMap");
    expect(config.data["auth.conf"]).toBe(rendered);
    expect(config.data["nats.conf"]).toMatch(/^include \.\/auth\.conf$/m);
    const nats = docs.find((d) => d.kind === "StatefulSet").spec.template.spec.containers[0];
    expect(nats.envFrom).toEqual([{ configMapRef: { name: "manifold-nats-nkeys" } }]);
  });

  test("docker-compose gives nats-server every role's public key and each service only its own seed", () => {
    const compose = parse(read("docker-compose.yml"), { merge: true }) as {
      services: Record<string, { environment?: Record<string, string>; secrets?: string[]; volumes?: string[] }>;
      secrets: Record<string, { file: string }>;
    };
    const nats = compose.services.nats!;
    for (const role of BUS_ROLES) expect(nats.environment![`MANIFOLD_${role.toUpperCase()}_NKEY`]).toBeDefined();
    expect(nats.volumes).toContain("./deploy/nats/auth.conf:/etc/nats/auth.conf:ro");
    for (const role of BUS_ROLES) {
      const service = compose.services[role]!;
      expect(service.secrets).toEqual([`nats-${role}-seed`]);
      expect(service.environment!.NATS_NKEY_SEED_FILE).toBe(`/run/secrets/nats-${role}-seed`);
      expect(compose.secrets[`nats-${role}-seed`]!.file).toBe(`./nats-keys/${role}.nk`);
    }
  });

  test("each Kubernetes deployment mounts only its own seed", () => {
    const deployments = parseAllDocuments(read("deploy/k8s/manifold.yaml"))
      .map((d) => d.toJSON())
      .filter((d) => d.kind === "Deployment");
    for (const role of BUS_ROLES) {
      const spec = deployments.find((d) => d.metadata.name === `manifold-${role}`).spec.template.spec;
      const env = Object.fromEntries(spec.containers[0].env.map((e: { name: string; value?: string }) => [e.name, e.value]));
      expect(env.NATS_NKEY_SEED_FILE).toBe("/etc/manifold/nats/seed");
      expect(spec.volumes.find((v: { name: string }) => v.name === "nats-seed").secret.items).toEqual([{ key: `${role}.nk`, path: "seed" }]);
    }
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

  // A dashboard only mounted is one Grafana never loads, over no data source: an SRE opened an empty Grafana.
  test("is loaded by the compose file's Grafana, over its Prometheus as the default data source", () => {
    const compose = parse(read("docker-compose.yml")) as { services: Record<string, { volumes?: string[] }> };
    const mounts = new Map(compose.services.grafana!.volumes!.map((v) => [v.split(":")[1]!, v.split(":")[0]!]));
    expect(mounts.get("/etc/grafana/provisioning")).toBe("./deploy/grafana/provisioning");
    const sources = parse(read("deploy/grafana/provisioning/datasources/prometheus.yaml")) as { datasources: { type: string; url: string; isDefault: boolean }[] };
    expect(sources.datasources).toEqual([expect.objectContaining({ type: "prometheus", url: "http://prometheus:9090", isDefault: true })]);
    expect(Object.keys(compose.services)).toContain("prometheus");
    const providers = parse(read("deploy/grafana/provisioning/dashboards/manifold.yaml")) as { providers: { type: string; options: { path: string } }[] };
    const folder = providers.providers[0]!.options.path;
    expect(mounts.get(`${folder}/manifold-dashboard.json`)).toBe("./deploy/grafana/manifold-dashboard.json");
    // The dashboard's panels take the data source through its variable, which picks the default.
    const dashboard = JSON.parse(read("deploy/grafana/manifold-dashboard.json")) as { templating: { list: { name: string; type: string; query: string }[] } };
    expect(dashboard.templating.list).toContainEqual(expect.objectContaining({ name: "datasource", type: "datasource", query: "prometheus" }));
  });
});

// Zero trust at the network: without policies, any pod in the cluster (a compromised one of another
// team) could open a socket to NATS's client port or the admin API, and only credentials stood in
// the way. Checked with a small reading of NetworkPolicy's ingress rules, as a cluster applies them.
describe("deploy/k8s/network.yaml", () => {
  type Labels = Record<string, string>;
  type Selector = { matchLabels?: Labels; matchExpressions?: { key: string; operator: string; values: string[] }[] };
  type Peer = { podSelector?: Selector; namespaceSelector?: Selector; ipBlock?: { cidr: string; except?: string[] } };
  type Rule = { from?: Peer[]; to?: Peer[]; ports?: { port: number }[] };
  type Policy = { spec: { podSelector: Selector; policyTypes: string[]; ingress?: Rule[]; egress?: Rule[] } };
  const policies = parseAllDocuments(read("deploy/k8s/network.yaml")).map((d) => d.toJSON() as Policy & { kind: string });
  const matches = (selector: Selector, labels: Labels) =>
    Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v) &&
    (selector.matchExpressions ?? []).every((e) => e.operator === "In" && e.values.includes(labels[e.key]!));
  /** A pod of Manifold's namespace, or `elsewhere` (in the namespace named `namespace`, or some other). */
  type Pod = { labels: Labels; elsewhere?: boolean; namespace?: string };
  /** The labels Kubernetes gives every namespace: its name. */
  const namespaceOf = (pod: Pod): Labels => ({ "kubernetes.io/metadata.name": pod.elsewhere ? (pod.namespace ?? "another-team") : "manifold" });
  /** An address outside the cluster: matched by `ipBlock`s only. */
  type Address = { ip: string };
  const inBlock = (ip: string, cidr: string) => {
    const block = new BlockList();
    const [net, bits] = cidr.split("/");
    // BlockList matches an IPv4 address in an IPv6 range (as v4-mapped); a cluster does not.
    if (isIPv6(net!) !== isIPv6(ip)) return false;
    block.addSubnet(net!, Number(bits), isIPv6(net!) ? "ipv6" : "ipv4");
    return block.check(ip, isIPv6(ip) ? "ipv6" : "ipv4");
  };
  const peerMatches = (peer: Peer, other: Pod | Address) =>
    "ip" in other
      ? peer.ipBlock !== undefined && inBlock(other.ip, peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((c) => inBlock(other.ip, c))
      : peer.ipBlock === undefined && (peer.namespaceSelector ? matches(peer.namespaceSelector, namespaceOf(other)) : !other.elsewhere) && matches(peer.podSelector ?? {}, other.labels);
  /** Whether the policies selecting `pod` in one direction let a connection with `other` on `port` through. */
  const lets = (direction: "Ingress" | "Egress", pod: Labels, other: Pod | Address, port: number) => {
    const selecting = policies.filter((p) => p.spec.policyTypes.includes(direction) && matches(p.spec.podSelector, pod));
    if (selecting.length === 0) return true;
    return selecting.some((p) =>
      ((direction === "Ingress" ? p.spec.ingress : p.spec.egress) ?? []).some((rule) => {
        const peers = direction === "Ingress" ? rule.from : rule.to;
        return (!rule.ports || rule.ports.some((p) => p.port === port)) && (!peers || peers.some((peer) => peerMatches(peer, other)));
      }),
    );
  };
  /** Whether a connection from a pod (in Manifold's namespace, or another) reaches `port` of a pod: out of one, into the other. */
  const admitted = (from: Pod, to: Labels, port: number) => (from.elsewhere || lets("Egress", from.labels, { labels: to }, port)) && lets("Ingress", to, from, port);
  /** Whether a pod of Manifold's namespace may open a connection to an address outside the cluster. */
  const reachesOut = (from: Labels, ip: string, port: number) => lets("Egress", from, { ip }, port);
  const app = (name: string) => ({ labels: { app: name } });
  const attacker = { labels: { app: "compromised" } };
  /** The namespaces the policies name, as they ship (an operator changes them to the cluster's). */
  const prometheus = { labels: { "app.kubernetes.io/name": "prometheus" }, elsewhere: true, namespace: "monitoring" };
  const ingressController = { labels: { "app.kubernetes.io/name": "ingress-nginx" }, elsewhere: true, namespace: "ingress-nginx" };
  /** A pod of Manifold's namespace labelled to reach the admin API (the CI runner that runs `manifold apply`). */
  const adminClient = { labels: { "manifold.io/admin-client": "true" } };

  test("every policy is a NetworkPolicy, and one denies every pod's ingress that no other admits", () => {
    expect(policies.map((p) => p.kind)).toEqual(Array(policies.length).fill("NetworkPolicy"));
    expect(admitted(attacker, { app: "anything-else" }, 80)).toBe(false);
  });

  test("NATS takes clients only from the three services, and routes only from itself", () => {
    for (const service of ["manifold-registry", "manifold-connector", "manifold-gateway"]) expect(admitted(app(service), { app: "nats" }, 4222), service).toBe(true);
    expect(admitted(attacker, { app: "nats" }, 4222)).toBe(false);
    expect(admitted({ ...app("manifold-gateway"), elsewhere: true }, { app: "nats" }, 4222)).toBe(false);
    expect(admitted(app("nats"), { app: "nats" }, 6222)).toBe(true);
    expect(admitted(app("manifold-connector"), { app: "nats" }, 6222)).toBe(false);
  });

  test("agents reach the gateway's MCP port through the ingress controller's namespace only; the admin API only admin clients of Manifold's namespace; metrics only Prometheus in the monitoring namespace", () => {
    expect(admitted(ingressController, { app: "manifold-gateway" }, 8080)).toBe(true);
    // Before: any pod of the cluster reached 8080 directly, and, the gateway trusting X-Forwarded-For
    // from private addresses (GATEWAY_TRUST_PROXY=uniquelocal), named a new client on each request.
    expect(admitted({ ...attacker, elsewhere: true }, { app: "manifold-gateway" }, 8080), "a pod of another namespace").toBe(false);
    expect(admitted(attacker, { app: "manifold-gateway" }, 8080), "a pod of Manifold's namespace").toBe(false);
    expect(admitted(attacker, { app: "manifold-registry" }, 8081)).toBe(false);
    expect(admitted(adminClient, { app: "manifold-registry" }, 8081)).toBe(true);
    // Before: a pod labelled so in any namespace reached the admin API and console, whoever could
    // create a pod anywhere in the cluster; only the admin token stood in the way.
    expect(admitted({ ...adminClient, elsewhere: true }, { app: "manifold-registry" }, 8081), "an admin client of another namespace").toBe(false);
    expect(admitted({ ...adminClient, elsewhere: true, namespace: "ingress-nginx" }, { app: "manifold-registry" }, 8081), "an admin client in the ingress controller's namespace").toBe(false);
    for (const [to, port] of [["manifold-gateway", 9464], ["manifold-registry", 9465], ["manifold-connector", 8082]] as const) {
      expect(admitted(prometheus, { app: to }, port), to).toBe(true);
      expect(admitted(attacker, { app: to }, port), to).toBe(false);
      // Before: a pod of any namespace labelled as Prometheus read every metric.
      expect(admitted({ ...prometheus, namespace: "another-team" }, { app: to }, port), `${to}: a pod labelled prometheus elsewhere`).toBe(false);
    }
  });

  test("egress: the registry reaches NATS, DNS and the collector only; connectors and gateways anywhere but link-local", () => {
    const dns = { labels: { "k8s-app": "kube-dns" }, elsewhere: true };
    const collector = { "app.kubernetes.io/name": "opentelemetry-collector" };
    for (const service of ["manifold-registry", "manifold-connector", "manifold-gateway"]) {
      expect(lets("Egress", { app: service }, { labels: { app: "nats" } }, 4222), service).toBe(true);
      expect(lets("Egress", { app: service }, dns, 53), service).toBe(true);
      expect(lets("Egress", { app: service }, { labels: collector, elsewhere: true }, 4318), service).toBe(true);
      // The cloud metadata services, by which a fetching tool in a stdio upstream would read the node's credentials.
      for (const ip of ["169.254.169.254", "169.254.170.2", "fd00:ec2::254", "fe80::1"]) expect(reachesOut({ app: service }, ip, 80), `${service} → ${ip}`).toBe(false);
    }
    for (const service of ["manifold-connector", "manifold-gateway"]) {
      for (const ip of ["203.0.113.7", "10.1.2.3", "2001:db8::1"]) expect(reachesOut({ app: service }, ip, 443), `${service} → ${ip}`).toBe(true);
    }
    expect(reachesOut({ app: "manifold-registry" }, "203.0.113.7", 443)).toBe(false);
    expect(lets("Egress", { app: "manifold-registry" }, attacker, 8080)).toBe(false);
    expect(reachesOut({ app: "nats" }, "203.0.113.7", 443)).toBe(false);
    expect(admitted(app("nats"), { app: "nats" }, 6222)).toBe(true);
  });

  test("every port a workload declares is admitted from someone: the policies break nothing deployed", () => {
    const workloads = ["deploy/k8s/manifold.yaml", "deploy/k8s/nats.yaml"].flatMap((path) => parseAllDocuments(read(path)).map((d) => d.toJSON())).filter((d) => d.kind === "Deployment" || d.kind === "StatefulSet");
    const sources = [app("manifold-registry"), app("manifold-connector"), app("manifold-gateway"), app("nats"), prometheus, ingressController, adminClient];
    const ports = workloads.flatMap((w) => w.spec.template.spec.containers.flatMap((c: { ports: { containerPort: number }[] }) => c.ports.map((p) => [w.spec.template.metadata.labels as Labels, p.containerPort] as const)));
    expect(ports.length).toBeGreaterThan(6);
    for (const [labels, port] of ports) expect(sources.some((s) => admitted(s, labels, port)), `${labels.app}:${port}`).toBe(true);
  });
});
