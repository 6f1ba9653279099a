import { create, type Delta } from "jsondiffpatch";
import type { PendingDrift } from "./types.js";
import { Json, Status, shortHash } from "./ui.js";

// Arrays matched by position (tool schemas rarely reorder); no text diff: strings show whole.
const differ = create({ arrays: { detectMove: false } });

interface Change {
  path: string;
  kind: "added" | "removed" | "changed";
  before?: unknown;
  after?: unknown;
}

/** jsondiffpatch's delta flattened into one row per changed path, walked with a stack (definitions come from upstreams). */
function changesOf(delta: Delta): Change[] {
  const out: Change[] = [];
  const stack: [Delta, string][] = [[delta, ""]];
  while (stack.length > 0 && out.length < 500) {
    const [d, path] = stack.pop()!;
    if (Array.isArray(d)) {
      if (d.length === 1) out.push({ path: path || "/", kind: "added", after: d[0] });
      else if (d.length === 2) out.push({ path: path || "/", kind: "changed", before: d[0], after: d[1] });
      else if (d.length === 3 && d[2] === 0) out.push({ path: path || "/", kind: "removed", before: d[0] });
      continue;
    }
    if (d && typeof d === "object") {
      for (const [key, child] of Object.entries(d as Record<string, Delta>).reverse()) {
        if (key === "_t") continue;
        stack.push([child, `${path}/${key.replace(/^_/, "")}`]);
      }
    }
  }
  return out;
}

const text = (value: unknown) => (value === undefined ? "" : JSON.stringify(value));

/** Pinned against live, side by side, with the class, reasons, the structural changes and the JSON Patch the registry computed. */
/** A pending drift, or a promotion's difference (which has no hashes). */
type Difference = Omit<PendingDrift, "pinnedHash" | "currentHash"> & Partial<Pick<PendingDrift, "pinnedHash" | "currentHash">>;

export function DriftDiff({ drift, pinned, live }: { drift: Difference; pinned?: unknown; live?: unknown }) {
  const delta = pinned !== undefined ? differ.diff(pinned, live ?? null) : undefined;
  const changes = delta ? changesOf(delta) : [];
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
      <details>
        <summary>JSON Patch (RFC 6902)</summary>
        <Json value={drift.diff} />
      </details>
    </div>
  );
}
