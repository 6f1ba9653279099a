import type { PinnedPrompt, PinnedResource, PinnedResourceTemplate } from "@manifold/contracts";
import { isDeepStrictEqual } from "node:util";
import { definitionPatch, hiddenTextReason, newText } from "./definitionText.js";
import type { Drift, DriftClass } from "./drift.js";

const TEXT = ["title", "description", "icons", "_meta"] as const;

function verdict(pinned: object, current: object, out: { breaking: string[]; text: string[]; compatible: string[] }): Drift {
  const hidden = hiddenTextReason(pinned, current);
  if (hidden) out.text.unshift(hidden);
  const classification: DriftClass = out.breaking.length ? "breaking" : out.text.length ? "description-changed" : "compatible";
  return { classification, reasons: [...out.breaking, ...out.text, ...out.compatible], diff: definitionPatch(pinned, current) };
}

/**
 * How a prompt moved since it was pinned. What an agent sends must stay valid: an argument
 * removed, added as required or made required is breaking; an optional argument added, or one
 * no longer required, is compatible. Text a person or model reads (title, description, icons,
 * `_meta`, argument text) is description-class: never adopted silently.
 */
export function classifyPromptDrift(pinned: PinnedPrompt, current: PinnedPrompt | undefined): Drift {
  if (!current) return { classification: "breaking", reasons: ["the prompt is gone"], diff: [{ op: "remove", path: "" }] };
  const out = { breaking: [] as string[], text: [] as string[], compatible: [] as string[] };
  for (const key of TEXT) if (!isDeepStrictEqual(pinned[key], current[key])) out.text.push(`/${key} changed`);
  const before = new Map((pinned.arguments ?? []).map((a) => [a.name, a]));
  const after = new Map((current.arguments ?? []).map((a) => [a.name, a]));
  for (const [name, arg] of before) {
    const now = after.get(name);
    if (!now) out.breaking.push(`/arguments/${name} removed`);
    else {
      if (now.required && !arg.required) out.breaking.push(`/arguments/${name} made required`);
      if (!now.required && arg.required) out.compatible.push(`/arguments/${name} no longer required`);
      if (now.title !== arg.title || now.description !== arg.description) out.text.push(`/arguments/${name} text changed`);
    }
  }
  for (const [name, arg] of after) if (!before.has(name)) (arg.required ? out.breaking : out.compatible).push(`/arguments/${name} added${arg.required ? " as required" : ""}`);
  const added = newText(pinned.arguments ?? [], current.arguments ?? []);
  if (added > 0) out.text.push(`the arguments carry new text (${added} ${added === 1 ? "string" : "strings"})`);
  return verdict(pinned, current, out);
}

/**
 * How a resource or resource template moved since it was pinned: its MIME type changing is
 * breaking (what readers parse changes); its name, text, icons, annotations or `_meta` changing
 * is description-class. Its URI is its identity: a changed URI is a resource gone and another one new.
 */
export function classifyResourceDrift<R extends PinnedResource | PinnedResourceTemplate>(pinned: R, current: R | undefined): Drift {
  if (!current) return { classification: "breaking", reasons: ["the resource is gone"], diff: [{ op: "remove", path: "" }] };
  const out = { breaking: [] as string[], text: [] as string[], compatible: [] as string[] };
  if (pinned.mimeType !== current.mimeType) out.breaking.push("/mimeType changed");
  for (const key of ["name", "annotations", ...TEXT] as const) if (!isDeepStrictEqual(pinned[key], current[key])) out.text.push(`/${key} changed`);
  return verdict(pinned, current, out);
}
