// `pnpm bench [--smoke] [--only=LANE] [--out=DIR]`: starts its own nats-server, the services and a fast upstream, and
// measures the hot path against a direct call in the same run. Writes DIR (bench-results/).
import { serviceEntry, spawnService } from "@manifold/cli";
import { freePort, startNatsServer } from "@manifold/nats-server";
import { callRows } from "./callRows.js";
import { compareCalls, measureConnector, measureList, useGatewayKey, withOpenSessions, type CallTarget, type Era, type Timing } from "./callScenarios.js";
import { admin, benchCatalog, connectRole, rssMb, startFastUpstream, startFloor, startMcpProxy, startServices } from "./processes.js";
import { measureBootReplay, measurePropagation } from "./registryScenarios.js";
import { writeReport, type Row } from "./report.js";
import { startBenchAuthorizationServer } from "./authorizationServer.js";
import { connectVaultAccount, VAULT_UPSTREAMS, vaultClient, vaultGatewayEnv, vaultRows, vaultSecrets, vaultUpstreams } from "./vaultLane.js";

const smoke = process.argv.includes("--smoke");
const only = process.argv.find((a) => a.startsWith("--only="))?.slice(7);
const profileDir = process.env.BENCH_PROFILE_DIR;
const outDir = process.argv.find((a) => a.startsWith("--out="))?.slice(6) ?? "bench-results";
const size = smoke
  ? { timing: { warmupMs: 300, durationMs: 1_000 }, rounds: 1, listUpstreams: 10, listTools: 50, changes: 20, bootUpstreams: 50, sessions: 50, memUpstreams: 5 }
  : { timing: { warmupMs: 3_000, durationMs: 15_000 }, rounds: 6, listUpstreams: 10, listTools: 500, changes: 200, bootUpstreams: 1_000, sessions: 1_000, memUpstreams: 100 };
const timing: Timing = size.timing;
const rows: Row[] = [];
const raw: Record<string, unknown> = {};
const log = (line: string) => process.stderr.write(`bench: ${line}\n`);

const nats = await startNatsServer();
const fast = await startFastUpstream();
const listUpstream = await startFastUpstream(size.listTools - 1);
const listNames = Array.from({ length: size.listUpstreams }, (_, i) => `list-${i}`);
// The vault lane's secrets and gateway settings are there in every lane (as in a deployment
// that has a vault); only the vault lane's upstreams use them.
const secrets = vaultSecrets();
const services = await startServices(
  nats,
  {
    connector: { CONNECTOR_UPSTREAMS: ["fast", VAULT_UPSTREAMS.static, VAULT_UPSTREAMS.vault, ...listNames].join(","), ...secrets.env },
    gateway: (gatewayUrl) => ({ ...vaultGatewayEnv(gatewayUrl), ...secrets.env }),
  },
  profileDir,
);
const authorizationServer = await startBenchAuthorizationServer(vaultClient(services.gatewayUrl, secrets.clientSecret));
const floor = await startFloor(nats, fast.url, false, profileDir);
const dutiesFloor = await startFloor(nats, fast.url, true, profileDir);
const proxy = await startMcpProxy();
const cleanup: (() => Promise<unknown>)[] = [
  () => Promise.all([...services.all, ...floor.all, ...dutiesFloor.all, proxy.process].map((s) => s.stop())),
  () => fast.process.stop(),
  () => listUpstream.process.stop(),
  () => nats.stop(),
  () => authorizationServer.close(),
];

try {
  const reg = services.registryUrl;
  const { exposed, gatewayKey, grant } = await benchCatalog(reg, fast.url);
  useGatewayKey(gatewayKey);

  const pid = (p: { child: { pid?: number } } | { pid?: number }) => ("child" in p ? p.child.pid : p.pid)!;
  const [upstream, natsServer] = [pid(fast.process), pid(nats.process)];
  const proxyPids = { "mcp-proxy": pid(proxy.process), upstream: await proxy.upstreamPid() };

  // 1. tools/call in each era: direct, through Manifold, through mcp-proxy and over the bare hops, at 1 and 64 clients.
  const lanes: { era: Era; counts: number[] }[] = [
    { era: "2025", counts: only === "call64" ? [64] : only === "call1" ? [1] : only === "call" || !only ? [1, 64] : [] },
    { era: "2026-07-28", counts: only === "call64" ? [64] : only === "call1" ? [1] : only === "call" || only === "call2026" || !only ? [1, 64] : [] },
  ];
  // In turn order: the bare hops and Manifold, whose ratio is the target, next to each other.
  const callTargets = (era: Era): Record<string, CallTarget> => ({
    direct: { url: fast.url, tool: "echo", pids: { upstream }, era },
    peer: { url: proxy.url, tool: "echo", pids: proxyPids, era },
    duties: { url: dutiesFloor.url, tool: "echo", pids: { front: pid(dutiesFloor.all[0]!), "nats-server": natsServer, back: pid(dutiesFloor.all[1]!), upstream }, era },
    bare: { url: floor.url, tool: "echo", pids: { front: pid(floor.all[0]!), "nats-server": natsServer, back: pid(floor.all[1]!), upstream }, era },
    manifold: { url: `${services.gatewayUrl}/mcp/bench`, tool: exposed, pids: { gateway: pid(services.gateway), "nats-server": natsServer, connector: pid(services.connector), upstream }, era },
  });
  // Every process serves both eras once before any lane is measured: otherwise the first lane ran
  // on processes V8 was still compiling (after 3,000 calls the gateway's compiler threads still
  // spent ~135,000 instructions a call) and the second on warm ones, so the eras read unalike.
  if (lanes.some((l) => l.counts.length > 0)) {
    log("tools/call warm-up, both eras");
    for (const { era } of lanes) await compareCalls(callTargets(era), 64, { warmupMs: 0, durationMs: smoke ? 500 : 4_000 }, 1);
  }
  for (const { era, counts } of lanes) {
    for (const clients of counts) {
      log(`tools/call ${era} at ${clients} client(s)`);
      const results = await compareCalls(callTargets(era), clients, timing, size.rounds);
      raw[`call_${era}_${clients}`] = results;
      rows.push(...callRows(era, clients, results));
    }
  }

  // 7. A call with the consumer's vault token beside one with a static secret, at 1 and 64 clients.
  if (!only || only === "vault") {
    log("vault token vs static secret");
    for (const upstream of vaultUpstreams(fast.url, authorizationServer.issuer)) await admin(reg, "POST", "/v1/upstreams", upstream);
    const vs = await admin(reg, "POST", "/v1/virtual-servers", { name: "vault", tools: Object.values(VAULT_UPSTREAMS).map((upstream) => ({ upstream, tool: "echo" })) });
    await grant("vault");
    const toolOf = (upstream: string) => (vs.tools as { upstream: string; exposedName: string }[]).find((t) => t.upstream === upstream)!.exposedName;
    const endpoint = `${services.gatewayUrl}/mcp/vault`;
    await connectVaultAccount(endpoint, gatewayKey, toolOf(VAULT_UPSTREAMS.vault));
    const pids = { gateway: pid(services.gateway), "nats-server": natsServer, connector: pid(services.connector), upstream };
    for (const clients of [1, 64]) {
      const results = await compareCalls(
        { static: { url: endpoint, tool: toolOf(VAULT_UPSTREAMS.static), pids }, vault: { url: endpoint, tool: toolOf(VAULT_UPSTREAMS.vault), pids } },
        clients,
        timing,
        size.rounds,
      );
      raw[`vault_${clients}`] = results;
      rows.push(...vaultRows(clients, results));
    }
  }

  // 6. The connector alone, straight over the bus.
  if (!only || only === "connector") {
    log("connector calls/s");
    const nc = await connectRole(nats, "gateway", "bench-load");
    const pids = { connector: pid(services.connector), "nats-server": natsServer, upstream };
    const single = await measureConnector(nc, "fast", 1, timing, pids);
    const connector = await measureConnector(nc, "fast", 64, timing, pids);
    await nc.close();
    raw.connector = { single, connector };
    rows.push(
      { scenario: "connector alone (NATS → connector → upstream), 1 in flight", metric: "p50 ms", value: single.p50Ms },
      { scenario: "connector alone, 64 in flight", metric: "calls/s per process", value: connector.callsPerSec },
      { scenario: "connector alone, 64 in flight", metric: "p50 ms", value: connector.p50Ms },
      ...Object.entries(connector.cpuUsPerCall).map(([name, us]) => ({ scenario: "connector alone, 64 in flight: CPU µs per call", metric: name, value: us })),
    );
  }

  // 2. tools/list on large virtual servers.
  if (!only || only === "list") {
    log("tools/list");
    for (const name of listNames) await admin(reg, "POST", "/v1/upstreams", { name, transport: { type: "streamable-http", url: listUpstream.url } });
    const toolNames = ["echo", ...Array.from({ length: size.listTools - 1 }, (_, i) => `tool_${i}`)];
    await admin(reg, "POST", "/v1/virtual-servers", { name: "list-all", tools: [] });
    for (const [i, upstream] of listNames.entries()) {
      const tools = toolNames.map((tool) => ({ upstream, tool }));
      await admin(reg, "POST", "/v1/virtual-servers/list-all/tools", { tools });
      await admin(reg, "POST", "/v1/virtual-servers", { name: `list-v${i}`, tools });
      await grant(`list-v${i}`);
    }
    await grant("list-all");
    const all = await measureList([`${services.gatewayUrl}/mcp/list-all`], timing);
    const ten = await measureList(listNames.map((_, i) => `${services.gatewayUrl}/mcp/list-v${i}`), timing);
    raw.list = { all, ten };
    rows.push(
      { scenario: `tools/list, 1 virtual server of ${all.tools} tools`, metric: "p50 ms", value: all.p50Ms, target: "≤ 1 ms at 5,000" },
      { scenario: `tools/list, 1 virtual server of ${all.tools} tools`, metric: "p99 ms", value: all.p99Ms },
      { scenario: `tools/list, ${listNames.length} virtual servers of ${ten.tools}`, metric: "p50 ms", value: ten.p50Ms },
    );
  }

  // 3. Admin command → visible on every node.
  if (!only) {
    log("propagation");
    const propagation = await measurePropagation(nats, reg, size.changes);
    raw.propagation = propagation;
    rows.push(
      { scenario: `admin command → applied on gateway and connector (${propagation.changes} changes)`, metric: "p50 ms", value: propagation.p50Ms },
      { scenario: `admin command → applied on gateway and connector (${propagation.changes} changes)`, metric: "p99 ms", value: propagation.p99Ms, target: "≤ 100 ms" },
    );
  }

  // 5. Memory: gateway with many open sessions; a connector serving many upstreams.
  if (!only || only === "memory") {
    log("memory");
    const gateway = pid(services.gateway);
    const idle = await rssMb(gateway);
    const loaded = await withOpenSessions(`${services.gatewayUrl}/mcp/bench`, size.sessions, () => rssMb(gateway));
    const connectorPort = await freePort();
    const names = Array.from({ length: size.memUpstreams }, (_, i) => `mem-${i}`);
    const memConnector = spawnService("mem-connector", serviceEntry("connector"), [], {
      ...nats.env("connector"),
      LOG_LEVEL: "warn",
      CONNECTOR_PORT: String(connectorPort),
      CONNECTOR_UPSTREAMS: names.join(","),
    });
    cleanup.unshift(() => memConnector.stop());
    await memConnector.ready(`http://127.0.0.1:${connectorPort}/readyz`);
    for (const name of names) await admin(reg, "POST", "/v1/upstreams", { name, transport: { type: "streamable-http", url: fast.url } });
    const connectorRss = await rssMb(pid(memConnector));
    raw.memory = { gatewayIdleMb: idle, gatewayMb: loaded, sessions: size.sessions, connectorMb: connectorRss, upstreams: size.memUpstreams };
    rows.push(
      { scenario: "gateway without sessions", metric: "RSS MB", value: idle },
      { scenario: `gateway with ${size.sessions} open sessions`, metric: "RSS MB", value: loaded, target: "≤ 200 MB at 1,000" },
      { scenario: `connector serving ${size.memUpstreams} upstreams`, metric: "RSS MB", value: connectorRss },
    );
  }

  // 4. Boot replay, on a fresh nats-server holding only the big catalog.
  if (!only) {
    log("boot replay");
    await using bootNats = await startNatsServer();
    const boot = await measureBootReplay(bootNats, size.bootUpstreams, 20);
    raw.boot = boot;
    for (const [service, ms] of Object.entries(boot.replayMs)) {
      rows.push({ scenario: `boot replay, ${boot.upstreams} upstreams × ${boot.tools} tools`, metric: `${service} ms`, value: ms, target: "≤ 3000 ms" });
    }
  }

  const table = await writeReport(outDir, smoke ? "smoke" : "full", rows, raw);
  process.stdout.write(`${table}\n`);
} finally {
  for (const step of cleanup) await step().catch(() => undefined);
}

