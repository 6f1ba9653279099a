import { jsonSpaceEnd, jsonStringEnd, jsonValueEnd } from "@manifold/contracts";

/** The escapes `JSON.stringify` writes itself besides `\u00XX` (`"`, `\`, and the short control-character ones). */
const WRITTEN_ESCAPES = new Set(['"', "\\", "b", "f", "n", "r", "t"]);

/**
 * The `result` member of a JSON-RPC answer, as the upstream wrote it in `text` (which `JSON.parse`
 * has read), when passing that on means the same as writing the parsed result again: undefined
 * otherwise (then it is written again). Written again, a 4 MB answer cost ~9 ms of a connector's
 * ~25 ms for it (`JSON.stringify`), and one more 4 MB string for the collector.
 *
 * Only a result whose strings hold no escape other than those `JSON.stringify` writes is taken as
 * written: redaction (`redactResult`) looks for credentials in the text, and a `\u0073` would hide
 * one. Only keys without escapes are read: an escaped one could read as `result` (of two members of
 * a name, `JSON.parse` keeps the last, and so does this).
 */
export function resultTextOf(text: string): string | undefined {
  let at = jsonSpaceEnd(text, 0);
  if (text[at] !== "{") return undefined;
  let start = -1;
  let end = -1;
  at = jsonSpaceEnd(text, at + 1);
  while (text[at] === '"') {
    const keyEnd = jsonStringEnd(text, at);
    if (keyEnd === -1) return undefined;
    const key = text.slice(at + 1, keyEnd);
    if (key.includes("\\")) return undefined;
    // Past the colon that follows the key.
    const valueStart = jsonSpaceEnd(text, jsonSpaceEnd(text, keyEnd + 1) + 1);
    const valueEnd = jsonValueEnd(text, valueStart);
    if (key === "result") [start, end] = [valueStart, valueEnd];
    at = jsonSpaceEnd(text, valueEnd);
    if (text[at] !== ",") break;
    at = jsonSpaceEnd(text, at + 1);
  }
  if (start === -1) return undefined;
  const result = text.slice(start, end);
  // Each backslash found starts an escape: the one it escapes is stepped over.
  for (let escape = result.indexOf("\\"); escape !== -1; escape = result.indexOf("\\", escape + 2)) {
    if (!WRITTEN_ESCAPES.has(result[escape + 1]!)) return undefined;
  }
  return result;
}
