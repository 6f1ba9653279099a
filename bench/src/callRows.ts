import type { CallResult, Era } from "./callScenarios.js";
import { round } from "./load.js";
import type { Row } from "./report.js";

/** Targets printed beside each lane: the issue's, against the bare hops (the 2025 lane: no slower than the last full run). */
export const TARGETS: Record<Era, { addedP50Ms: number; shareOfBare: number }> = {
  "2025": { addedP50Ms: 0.21, shareOfBare: 0.72 },
  "2026-07-28": { addedP50Ms: 0.15, shareOfBare: 0.85 },
};

/** CPU of every process on the call's path, the load generator's aside. */
const pathCpuUs = (r: CallResult) => Object.entries(r.cpuUsPerCall).reduce((sum, [name, us]) => (name === "load" ? sum : sum + us), 0);

/** The rows of one lane at one client count: Manifold beside mcp-proxy, direct and the bare hops. */
export function callRows(era: Era, clients: number, results: Record<string, CallResult>): Row[] {
  const { direct, bare, peer, manifold, duties } = results as Record<"direct" | "bare" | "peer" | "manifold" | "duties", CallResult>;
  const s = `tools/call ${era}, ${clients} client${clients > 1 ? "s" : ""}`;
  const target = TARGETS[era];
  const rows: Row[] = [
    {
      scenario: s,
      metric: "p50 ms",
      value: manifold.p50Ms,
      peer: peer.p50Ms,
      direct: direct.p50Ms,
      floor: bare.p50Ms,
      ratio: round(manifold.p50Ms / direct.p50Ms, 2),
      target: clients === 1 ? `+${round(manifold.p50Ms - bare.p50Ms)} ms over bare hops (≤ ${target.addedP50Ms})` : "",
    },
    { scenario: s, metric: "p99 ms", value: manifold.p99Ms, peer: peer.p99Ms, direct: direct.p99Ms, floor: bare.p99Ms, ratio: round(manifold.p99Ms / direct.p99Ms, 2), target: clients === 64 ? "≤ 1.5× direct" : "" },
    {
      scenario: s,
      metric: "calls/s",
      value: manifold.callsPerSec,
      peer: peer.callsPerSec,
      direct: direct.callsPerSec,
      floor: bare.callsPerSec,
      ratio: round(manifold.callsPerSec / direct.callsPerSec, 2),
      target: clients === 64 ? `${round(manifold.callsPerSec / bare.callsPerSec, 2)}× bare hops (≥ ${target.shareOfBare})` : "",
    },
    { scenario: s, metric: "errors", value: manifold.errors, peer: peer.errors, direct: direct.errors, floor: bare.errors, target: "0" },
    // What each adds over calling the upstream directly, summed over its processes (the load generator's aside).
    { scenario: `${s}: CPU µs per call added over direct`, metric: "whole path", value: round(pathCpuUs(manifold) - pathCpuUs(direct), 1), peer: round(pathCpuUs(peer) - pathCpuUs(direct), 1), floor: round(pathCpuUs(bare) - pathCpuUs(direct), 1) },
    { scenario: `${s}: calls/s as a share`, metric: "of bare hops", value: round(manifold.callsPerSec / bare.callsPerSec, 2), peer: round(peer.callsPerSec / bare.callsPerSec, 2) },
  ];
  // Where the time goes per hop: CPU per call of each process (gateway ~ front, connector ~ back; mcp-proxy's own).
  const hops: [string, string, string?][] = [["load", "load"], ["gateway", "front"], ["nats-server", "nats-server"], ["connector", "back"], ["upstream", "upstream", "upstream"]];
  for (const [ours, floorName, directName = ours === "load" ? "load" : undefined] of hops) {
    rows.push({
      scenario: `${s}: CPU µs per call`,
      metric: ours === floorName ? ours : `${ours} (bare: ${floorName})`,
      value: manifold.cpuUsPerCall[ours]!,
      direct: directName ? direct.cpuUsPerCall[directName] : undefined,
      floor: bare.cpuUsPerCall[floorName],
      peer: ours === "gateway" ? peer.cpuUsPerCall["mcp-proxy"] : ours === "load" || ours === "upstream" ? peer.cpuUsPerCall[ours] : undefined,
    });
  }
  // The duties floor (bench/src/floor.ts): the bare hops plus the least the required per-call work
  // costs. Manifold's share can reach at most about this far; the gap to it is Manifold's own.
  if (duties) {
    const d = `${s}: duties floor`;
    rows.push(
      { scenario: d, metric: "calls/s as a share of bare hops", value: round(duties.callsPerSec / bare.callsPerSec, 2), floor: 1 },
      { scenario: d, metric: "p50 ms", value: duties.p50Ms, floor: bare.p50Ms, target: clients === 1 ? `+${round(duties.p50Ms - bare.p50Ms)} ms over bare hops` : "" },
      { scenario: d, metric: "CPU µs per call, front", value: duties.cpuUsPerCall["front"]!, floor: bare.cpuUsPerCall["front"] },
      { scenario: d, metric: "CPU µs per call, back", value: duties.cpuUsPerCall["back"]!, floor: bare.cpuUsPerCall["back"] },
      { scenario: d, metric: "CPU µs per call, nats-server", value: duties.cpuUsPerCall["nats-server"]!, floor: bare.cpuUsPerCall["nats-server"] },
    );
  }
  return rows;
}
