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

/** `manifold export [-o manifold.yaml]`: the registry as a manifold file. */
export async function exportCommand(args: string[], env: Record<string, string | undefined>): Promise<void> {
  const { values } = parseArgs({ args, options: { output: { type: "string", short: "o" } } });
  const target = await adminTarget(env);
  const current = await readCurrent(target);
  const promotions = new Map(
    await Promise.all(current.virtualServers.map(async (vs) => [vs.name, await readPromotions(target, vs, (line) => console.error(`warning: ${line}`))] as const)),
  );
  const yaml = stringify(exportFile(current, promotions));
  if (values.output) await writeFile(values.output, yaml);
  else process.stdout.write(yaml);
}
