import type { PinnedToolDefinition } from "@manifold/contracts";
import { isDeepStrictEqual } from "node:util";
import type { Operation } from "rfc6902";
import { definitionPatch, hiddenTextReason, newText } from "./definitionText.js";

export type DriftClass = "compatible" | "breaking" | "description-changed";

export interface Drift {
  classification: DriftClass;
  /** Why, one line per finding, with the JSON path concerned. */
  reasons: string[];
  /** RFC 6902 JSON Patch from the pinned definition to the current one. */
  diff: Operation[];
}

type Schema = Record<string, unknown>;
const TEXT = new Set(["description", "title"]);
/** Free text an agent reads, beside description and title: prompts can hide there too. */
const OTHER_TEXT = new Set(["$comment", "examples"]);
/** Dialect and identity markers: they change nothing an agent sends. */
const METADATA = new Set(["$schema", "$id"]);
const STRUCTURE = new Set(["type", "properties", "required", "enum", "items", ...TEXT, ...OTHER_TEXT, ...METADATA]);

const types = (schema: Schema): Set<string> | undefined => {
  const t = schema.type;
  return t === undefined ? undefined : new Set(Array.isArray(t) ? (t as string[]) : [t as string]);
};
const subset = <T>(a: Iterable<T>, b: ReadonlySet<T>) => [...a].every((x) => b.has(x));
const asSchema = (v: unknown): Schema => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Schema) : {});

/**
 * Compares a schema as the agent knows it with the upstream's current one. For inputs, what
 * an agent sends must stay valid: a removed or newly required property, or a narrowed type or
 * enum, is breaking; a new optional property or a widened type is compatible. Text (titles,
 * descriptions) is reported apart: prompts can be poisoned that way.
 */
function compareSchema(before: Schema, after: Schema, path: string, out: { breaking: string[]; text: string[]; compatible: string[] }): void {
  for (const key of TEXT) if (before[key] !== after[key]) out.text.push(`${path}/${key} changed`);
  for (const key of OTHER_TEXT) if (!isDeepStrictEqual(before[key], after[key])) out.text.push(`${path}/${key} changed`);
  for (const key of METADATA) if (before[key] !== after[key]) out.compatible.push(`${path}/${key} changed`);

  const tb = types(before);
  const ta = types(after);
  if (tb && ta && !isDeepStrictEqual(tb, ta)) {
    if (subset(tb, ta)) out.compatible.push(`${path}/type widened`);
    else out.breaking.push(`${path}/type changed or narrowed`);
  } else if (!tb && ta) out.breaking.push(`${path}/type now restricted`);
  else if (tb && !ta) out.compatible.push(`${path}/type no longer restricted`);

  const eb = before.enum as unknown[] | undefined;
  const ea = after.enum as unknown[] | undefined;
  if (eb && ea && !isDeepStrictEqual(eb, ea)) {
    if (subset(eb, new Set(ea))) out.compatible.push(`${path}/enum extended`);
    else out.breaking.push(`${path}/enum narrowed`);
  } else if (!eb && ea) out.breaking.push(`${path}/enum added`);
  else if (eb && !ea) out.compatible.push(`${path}/enum removed`);

  const pb = asSchema(before.properties);
  const pa = asSchema(after.properties);
  const rb = new Set((before.required as string[] | undefined) ?? []);
  const ra = new Set((after.required as string[] | undefined) ?? []);
  for (const name of Object.keys(pb)) {
    if (!Object.hasOwn(pa, name)) out.breaking.push(`${path}/properties/${name} removed`);
    else compareSchema(asSchema(pb[name]), asSchema(pa[name]), `${path}/properties/${name}`, out);
  }
  for (const name of Object.keys(pa)) if (!Object.hasOwn(pb, name)) (ra.has(name) ? out.breaking : out.compatible).push(`${path}/properties/${name} added${ra.has(name) ? " as required" : ""}`);
  for (const name of ra) if (!rb.has(name) && Object.hasOwn(pb, name)) out.breaking.push(`${path}/required now includes ${name}`);
  for (const name of rb) if (!ra.has(name)) out.compatible.push(`${path}/required no longer includes ${name}`);

  if (before.items !== undefined || after.items !== undefined) compareSchema(asSchema(before.items), asSchema(after.items), `${path}/items`, out);

  // Any other keyword (pattern, bounds, formats, additionalProperties…): a change may reject what passed before.
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (!STRUCTURE.has(key) && !isDeepStrictEqual(before[key], after[key])) out.breaking.push(`${path}/${key} changed`);
  }
}

/**
 * How a tool changed between its pinned definition and what the upstream reports now. The most
 * severe finding wins: breaking, then description-changed (any title, description or annotation
 * text: never adopted silently), then compatible.
 */
export function classifyDrift(pinned: PinnedToolDefinition, current: PinnedToolDefinition | undefined): Drift {
  if (!current) return { classification: "breaking", reasons: ["the tool is gone"], diff: [{ op: "remove", path: "" }] };
  const out = { breaking: [] as string[], text: [] as string[], compatible: [] as string[] };
  const hidden = hiddenTextReason(pinned, current);
  if (hidden) out.text.push(hidden);
  for (const key of ["title", "description"] as const) if (pinned[key] !== current[key]) out.text.push(`/${key} changed`);
  // Shown to people and models: icons can impersonate another tool, `_meta` carries UI (MCP Apps) links.
  for (const key of ["annotations", "icons", "_meta"] as const) if (!isDeepStrictEqual(pinned[key], current[key])) out.text.push(`/${key} changed`);
  if (!isDeepStrictEqual(pinned.execution, current.execution)) out.breaking.push("/execution changed (how the tool may be called)");
  compareSchema(pinned.inputSchema, current.inputSchema, "/inputSchema", out);
  if (!isDeepStrictEqual(pinned.outputSchema, current.outputSchema)) {
    // Outputs run the other way: what the agent reads must still be there.
    const before = asSchema(pinned.outputSchema);
    const after = asSchema(current.outputSchema);
    const removed = Object.keys(asSchema(before.properties)).filter((k) => !Object.hasOwn(asSchema(after.properties), k));
    if (removed.length || (pinned.outputSchema && !current.outputSchema)) out.breaking.push(`/outputSchema lost ${removed.join(", ") || "its schema"}`);
    else out.compatible.push("/outputSchema extended");
  }
  const added = newText([pinned.inputSchema, pinned.outputSchema], [current.inputSchema, current.outputSchema]);
  if (added > 0) out.text.push(`the schemas carry new text (${added} ${added === 1 ? "string" : "strings"})`);
  const classification: DriftClass = out.breaking.length ? "breaking" : out.text.length ? "description-changed" : "compatible";
  return { classification, reasons: [...out.breaking, ...out.text, ...out.compatible], diff: definitionPatch(pinned, current) };
}
