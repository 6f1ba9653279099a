import { create, type Delta } from "jsondiffpatch";
import type { PendingDrift } from "./types.js";
import { Json, Status, shortHash } from "./ui.js";
import { revealHidden } from "./hiddenText.js";

// Arrays matched by position (tool schemas rarely reorder); no text diff: strings show whole.
const differ = create({ arrays: { detectMove: false } });

interface Change {
  path: string;
  kind: "added" | "removed" | "changed";
  before?: unknown;
  after?: unknown;
}

/** The most rows the changes table lists; the rest are counted, and the JSON Patch below has them all. */
const MAX_ROWS = 500;

/** A JSON Pointer token (RFC 6901): a key holding `/` is not taken for two levels. */
const token = (key: string) => key.replaceAll("~", "~0").replaceAll("/", "~1");

/**
 * jsondiffpatch's delta flattened into one row per changed path, walked with a stack (definitions
 * come from upstreams): the first `MAX_ROWS`, and how many more there are. Only an array's delta
 * (`_t: "a"`) has bookkeeping keys (`_t`, and `_3` for the item removed at 3): an object's keys
 * are the definition's own. Before, `_t` and a leading `_` were dropped everywhere, and an
 * upstream's new `_meta._t` never showed in the table.
 */
function changesOf(delta: Delta): { changes: Change[]; more: number } {
  const changes: Change[] = [];
  let more = 0;
  const stack: [Delta, string][] = [[delta, ""]];
  const add = (change: Change) => (changes.length < MAX_ROWS ? changes.push(change) : more++);
  while (stack.length > 0) {
    const [d, path] = stack.pop()!;
    if (Array.isArray(d)) {
      if (d.length === 1) add({ path: path || "/", kind: "added", after: d[0] });
      else if (d.length === 2) add({ path: path || "/", kind: "changed", before: d[0], after: d[1] });
      else if (d.length === 3 && d[2] === 0) add({ path: path || "/", kind: "removed", before: d[0] });
      continue;
    }
    if (d && typeof d === "object") {
      const ofArray = (d as Record<string, unknown>)._t === "a";
      for (const [key, child] of Object.entries(d as Record<string, Delta>).reverse()) {
        if (ofArray && key === "_t") continue;
        stack.push([child, `${path}/${token(ofArray ? key.replace(/^_/, "") : key)}`]);
      }
    }
  }
  return { changes, more };
}

const text = (value: unknown) => (value === undefined ? "" : revealHidden(JSON.stringify(value)));

/** Pinned against live, side by side, with the class, reasons, the structural changes and the JSON Patch the registry computed. */
/** A pending drift, or a promotion's difference (which has no hashes). */
type Difference = Omit<PendingDrift, "pinnedHash" | "currentHash"> & Partial<Pick<PendingDrift, "pinnedHash" | "currentHash">>;

export function DriftDiff({ drift, pinned, live }: { drift: Difference; pinned?: unknown; live?: unknown }) {
  const delta = pinned !== undefined ? differ.diff(pinned, live ?? null) : undefined;
  const { changes, more } = delta ? changesOf(delta) : { changes: [], more: 0 };
  return (
    <div class="drift">
      <p>
        Class <Status value={drift.classification} /> · {drift.upstream}/{drift.tool}
        {drift.pinnedHash && (
          <>
            {" "}
            · pinned <code>{shortHash(drift.pinnedHash)}</code> → live <code>{(drift.currentHash ? shortHash(drift.currentHash) : "gone")}</code>
          </>
        )}
      </p>
      <ul class="reasons" aria-label="reasons">
        {drift.reasons.map((r) => (
          <li>{r}</li>
        ))}
      </ul>
      {pinned !== undefined && (
        <div class="side-by-side">
          <figure>
            <figcaption>Pinned</figcaption>
            <Json value={pinned} />
          </figure>
          <figure>
            <figcaption>Live</figcaption>
            <Json value={live ?? null} />
          </figure>
        </div>
      )}
      {changes.length > 0 && (
        <table class="changes" aria-label="changes">
          <thead>
            <tr>
              <th scope="col">Path</th>
              <th scope="col">Change</th>
              <th scope="col">Pinned</th>
              <th scope="col">Live</th>
            </tr>
          </thead>
          <tbody>
            {changes.map((c) => (
              <tr class={`change-${c.kind}`}>
                <td>
                  <code>{c.path}</code>
                </td>
                <td>{c.kind}</td>
                <td class="value">{text(c.before)}</td>
                <td class="value">{text(c.after)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {more > 0 && (
        <p class="warning">
          {more} more {more === 1 ? "change is" : "changes are"} not listed above: the JSON Patch below has every one.
        </p>
      )}
      <details>
        <summary>JSON Patch (RFC 6902)</summary>
        <Json value={drift.diff} />
      </details>
    </div>
  );
}
