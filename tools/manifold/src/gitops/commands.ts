import { readFile, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { adminTarget } from "../adminClient.js";
import { parseManifoldFile } from "./file.js";
import { exportFile, plan, readCurrent } from "./plan.js";
import { readPromotions } from "./promotions.js";

/** `manifold apply -f manifold.yaml [--dry-run] [--prune]`. */
export async function apply(args: string[], env: Record<string, string | undefined>): Promise<void> {
  const { values } = parseArgs({ args, options: { file: { type: "string", short: "f" }, "dry-run": { type: "boolean" }, prune: { type: "boolean" } } });
  if (!values.file) throw new Error("usage: manifold apply -f manifold.yaml [--dry-run] [--prune]");
  const file = parseManifoldFile(await readFile(values.file, "utf8"), values.file);
  const target = await adminTarget(env);
  const actions = plan(target, file, await readCurrent(target), values.prune ?? false);
  if (actions.length === 0) return console.log("no changes");
  for (const action of actions) {
    console.log(`${values["dry-run"] ? "would " : ""}${action.describe}`);
    if (!values["dry-run"]) await action.run();
  }
  console.log(`${actions.length} change${actions.length === 1 ? "" : "s"}${values["dry-run"] ? " planned (dry run)" : " applied"}`);
}

/** History reads an export runs at once: half the registry's default per-admin bound, the rest left to a console open meanwhile. */
const HISTORY_READERS = 2;

/** `manifold export [-o manifold.yaml]`: the registry as a manifold file. */
export async function exportCommand(args: string[], env: Record<string, string | undefined>): Promise<void> {
  const { values } = parseArgs({ args, options: { output: { type: "string", short: "o" } } });
  const target = await adminTarget(env);
  const current = await readCurrent(target);
  // A few histories at a time: the registry runs only `REGISTRY_MAX_PAGE_READS_PER_ADMIN` (4) page
  // reads at once per admin token, and refuses the rest. Read all at once, an export of many virtual
  // servers was refused some of them after every retry, and failed.
  const promotions = new Map<string, Awaited<ReturnType<typeof readPromotions>>>();
  const unread = [...current.virtualServers];
  const reader = async () => {
    for (let vs = unread.shift(); vs !== undefined; vs = unread.shift()) promotions.set(vs.name, await readPromotions(target, vs, (line) => console.error(`warning: ${line}`)));
  };
  await Promise.all(Array.from({ length: HISTORY_READERS }, reader));
  const yaml = stringify(exportFile(current, promotions));
  if (values.output) await writeFile(values.output, yaml);
  else process.stdout.write(yaml);
}
