// `node bench/dist/sideBySide.js <other gateway entry> [era] [rounds]`: this build's gateway and
// another build's (its `services/gateway/dist/main.js`) on one stack: one nats-server, registry,
// connector and echo upstream, so only the gateways differ. Whole-bench runs on a shared machine
// move by more than a gateway change (the same build's share of the bare hops has ranged 0.57 to
// 0.91), and whichever target is measured first in a round was up to ~9 % slower here, so the two
// take turns in both orders (ab, then ba) and the figures are their means.
import { CALL_PATH_NODE_FLAGS, spawnService } from "@manifold/cli";
import { freePort, startNatsServer } from "@manifold/nats-server";
import { compareCalls, useGatewayKey, type CallResult, type CallTarget, type Era } from "./callScenarios.js";
import { ADMIN_TOKEN, benchCatalog, startFastUpstream, startServices } from "./processes.js";

const [otherEntry, era = "2026-07-28", roundsArg = "4"] = process.argv.slice(2) as [string | undefined, Era | undefined, string | undefined];
if (!otherEntry) throw new Error("usage: sideBySide.js <other build's services/gateway/dist/main.js> [2025|2026-07-28] [rounds]");
const rounds = Number(roundsArg);
const CLIENTS = 64;

const nats = await startNatsServer();
const fast = await startFastUpstream();
const services = await startServices(nats, { connector: { CONNECTOR_UPSTREAMS: "fast" } });
const otherPort = await freePort();
const other = spawnService("gateway-other", otherEntry, [], {
  LOG_LEVEL: "warn",
  MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN,
  ...nats.env("gateway"),
  GATEWAY_PORT: String(otherPort),
  GATEWAY_METRICS_PORT: String(await freePort()),
  GATEWAY_MAX_SESSIONS_PER_PRINCIPAL: "100000",
  GATEWAY_MAX_REQUESTS_PER_S_PER_PRINCIPAL: "1000000",
}, undefined, [...CALL_PATH_NODE_FLAGS]);
try {
  await other.ready(`http://127.0.0.1:${otherPort}/readyz`);
  const { exposed: tool, gatewayKey } = await benchCatalog(services.registryUrl, fast.url);
  useGatewayKey(gatewayKey);
  const pid = (p: { child: { pid?: number } }) => p.child.pid!;
  const shared = { connector: pid(services.connector), "nats-server": nats.process.pid! };
  const targets: Record<"this" | "other", CallTarget> = {
    this: { url: `${services.gatewayUrl}/mcp/bench`, tool, pids: { gateway: pid(services.gateway), ...shared }, era },
    other: { url: `http://127.0.0.1:${otherPort}/mcp/bench`, tool, pids: { gateway: pid(other), ...shared }, era },
  };
  const timing = { warmupMs: 2_000 * rounds, durationMs: 5_000 * rounds };
  const ab = await compareCalls({ this: targets.this, other: targets.other }, CLIENTS, timing, rounds);
  const ba = await compareCalls({ other: targets.other, this: targets.this }, CLIENTS, timing, rounds);
  const ratio = (pick: (r: CallResult) => number) => ((pick(ab.this) / pick(ab.other)) * (pick(ba.this) / pick(ba.other))) ** 0.5;
  const summary = {
    era,
    clients: CLIENTS,
    rounds,
    callsPerSec: { this: [ab.this.callsPerSec, ba.this.callsPerSec], other: [ab.other.callsPerSec, ba.other.callsPerSec] },
    gatewayCpuUsPerCall: { this: [ab.this.cpuUsPerCall.gateway, ba.this.cpuUsPerCall.gateway], other: [ab.other.cpuUsPerCall.gateway, ba.other.cpuUsPerCall.gateway] },
    // Geometric means over both orders: this build against the other.
    callsPerSecRatio: Number(ratio((r) => r.callsPerSec).toFixed(3)),
    gatewayCpuRatio: Number(ratio((r) => r.cpuUsPerCall.gateway!).toFixed(3)),
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
} finally {
  await Promise.all([...services.all, other].map((s) => s.stop()));
  await fast.process.stop();
  await nats.stop();
}
