import type { Operation } from "rfc6902";
import type { PendingDrift } from "./types.js";
import { LongText } from "./LongText.js";
import { applyOperation, valueAt } from "./ownJsonPointer.js";
import { Json, Status, shortHash } from "./ui.js";

interface Change {
  path: string;
  kind: "added" | "removed" | "changed";
  before?: unknown;
  after?: unknown;
}

/** The most rows the changes table lists; the rest are counted, and the JSON Patch below has them all. */
const MAX_ROWS = 500;

/**
 * One row per operation of the JSON Patch the registry computed from the pinned definition to the
 * live one (bounded there: arrays longer than 64 items are one replacement), each operation's
 * before-value read where the operations before it left the document (array indexes shift). The
 * browser diffs nothing itself: diffing a hostile upstream's 20,000-value enum here took 26 s and
 * 3.4 GB, and at 40,000 the tab died, hiding every other drift of the virtual server.
 */
function changesOf(pinned: unknown, patch: readonly Operation[]): { changes: Change[]; more: number } {
  let document = structuredClone(pinned);
  const changes: Change[] = [];
  for (const op of patch.slice(0, MAX_ROWS)) {
    const before = op.op === "add" ? undefined : valueAt(document, op.path);
    const after = "value" in op ? op.value : undefined;
    changes.push({ path: op.path || "/", kind: op.op === "add" ? "added" : op.op === "remove" ? "removed" : "changed", before, after });
    document = applyOperation(document, op);
  }
  return { changes, more: Math.max(patch.length - MAX_ROWS, 0) };
}

/**
 * A value as one line of JSON. Each cell, path and reason shows its first 2,000 characters (`LongText`):
 * an upstream's new description may be 200,000, and a property's name, which paths and reasons quote, 100,000.
 */
const text = (value: unknown) => (value === undefined ? "" : JSON.stringify(value));

/** Pinned against live, side by side, with the class, reasons, the structural changes and the JSON Patch the registry computed. */
/** A pending drift, or a promotion's difference (which has no hashes). */
type Difference = Omit<PendingDrift, "pinnedHash" | "currentHash"> & Partial<Pick<PendingDrift, "pinnedHash" | "currentHash">>;

export function DriftDiff({ drift, pinned, live }: { drift: Difference; pinned?: unknown; live?: unknown }) {
  const { changes, more } = pinned !== undefined ? changesOf(pinned, drift.diff as Operation[]) : { changes: [], more: 0 };
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
          <li>
            <LongText text={r} />
          </li>
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
                  <code>
                    <LongText text={c.path} />
                  </code>
                </td>
                <td>{c.kind}</td>
                <td class="value">
                  <LongText text={text(c.before)} />
                </td>
                <td class="value">
                  <LongText text={text(c.after)} />
                </td>
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
