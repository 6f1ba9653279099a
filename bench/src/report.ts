import { spawnSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";

export interface Row {
  scenario: string;
  metric: string;
  value: number | string;
  direct?: number;
  /** The same measurement of the peer (mcp-proxy in front of the same echo tool). */
  peer?: number;
  /** The same hops with nothing else on them (bench/src/floor.ts). */
  floor?: number;
  ratio?: number;
  target?: string;
}

/** Writes results.json (machine-readable) and results.md, and returns the Markdown table. */
export async function writeReport(dir: string, mode: string, rows: Row[], raw: Record<string, unknown>): Promise<string> {
  const natsServer = spawnSync(process.env.NATS_SERVER_BIN ?? "nats-server", ["--version"], { encoding: "utf8" }).stdout?.trim();
  const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, memoryGb: Math.round(totalmem() / 2 ** 30), node: process.version, natsServer };
  const table = [
    "| scenario | metric | Manifold | mcp-proxy | direct | ratio | bare hops | bare ratio | target |",
    "|---|---|---|---|---|---|---|---|---|",
    ...rows.map((r) => {
      const floorRatio = r.floor !== undefined && r.direct ? Number((r.floor / r.direct).toFixed(2)) : "";
      return `| ${r.scenario} | ${r.metric} | ${r.value} | ${r.peer ?? ""} | ${r.direct ?? ""} | ${r.ratio ?? ""} | ${r.floor ?? ""} | ${floorRatio} | ${r.target ?? ""} |`;
    }),
  ].join("\n");
  await mkdir(dir, { recursive: true });
  const at = new Date().toISOString();
  await writeFile(`${dir}/results.json`, JSON.stringify({ at, mode, machine, rows, raw }, null, 2));
  await writeFile(`${dir}/results.md`, `# Manifold benchmark (${mode}, ${at})\n\n${JSON.stringify(machine)}\n\n${table}\n`);
  return table;
}
