import { mkdir, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";

export interface Row {
  scenario: string;
  metric: string;
  value: number | string;
  direct?: number;
  ratio?: number;
  target?: string;
}

/** Writes results.json (machine-readable) and results.md, and returns the Markdown table. */
export async function writeReport(dir: string, mode: string, rows: Row[], raw: Record<string, unknown>): Promise<string> {
  const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, memoryGb: Math.round(totalmem() / 2 ** 30), node: process.version };
  const table = [
    "| scenario | metric | Manifold | direct | ratio | target |",
    "|---|---|---|---|---|---|",
    ...rows.map((r) => `| ${r.scenario} | ${r.metric} | ${r.value} | ${r.direct ?? ""} | ${r.ratio ?? ""} | ${r.target ?? ""} |`),
  ].join("\n");
  await mkdir(dir, { recursive: true });
  const at = new Date().toISOString();
  await writeFile(`${dir}/results.json`, JSON.stringify({ at, mode, machine, rows, raw }, null, 2));
  await writeFile(`${dir}/results.md`, `# Manifold benchmark (${mode}, ${at})\n\n${JSON.stringify(machine)}\n\n${table}\n`);
  return table;
}
