import { useState } from "preact/hooks";
import { api, seg } from "./api.js";
import type { FoundTool } from "./types.js";
import { useLatestSearch } from "./latestSearch.js";
import { ErrorBox, Field, shortHash } from "./ui.js";

/** A tool to select, with its optional alias and description override (the API's ToolRef). */
export interface ToolRef {
  upstream: string;
  tool: string;
  alias?: string;
  description?: string;
}
const MAX_SHOWN = 100;

/**
 * Search across every upstream's tools on the registry (`GET /v1/upstream-tools`): lists show
 * upstreams without their definitions, so the page never holds the whole catalog. The first
 * hundred matches are offered. Searches count among the admin's page reads (4 at once): one is sent
 * when typing pauses, one at a time (`useLatestSearch`).
 */
export function ToolPicker({ selected, onChange }: { selected: ToolRef[]; onChange: (refs: ToolRef[]) => void }) {
  const [search, setSearch] = useState("");
  const needle = search.trim();
  const found = useLatestSearch(needle, (q) => api<{ items: FoundTool[]; complete: boolean }>("GET", `/v1/upstream-tools?${new URLSearchParams({ q, limit: String(MAX_SHOWN) }).toString()}`));
  const matches = found.value?.items ?? [];
  const isSelected = (u: string, t: string) => selected.some((s) => s.upstream === u && s.tool === t);
  const toggle = (u: string, t: string) =>
    onChange(isSelected(u, t) ? selected.filter((s) => !(s.upstream === u && s.tool === t)) : [...selected, { upstream: u, tool: t }]);
  const update = (i: number, patch: Partial<ToolRef>) => onChange(selected.map((s, j) => (i === j ? { ...s, ...patch } : s)));
  return (
    <div class="picker">
      <Field label="Search tools" hint={found.value?.complete === false ? `the first ${matches.length} matches are listed: search for more of a name to narrow them` : `${matches.length} matching tools`}>
        {(id) => <input id={id} type="search" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />}
      </Field>
      <ErrorBox error={found.error} />
      <ul class="choices" aria-label="matching tools">
        {matches.map((t) => {
          // Each part encoded: joined raw, upstream `a-b` with tool `c` and upstream `a` with tool `b-c` shared one id.
          const id = `pick-${seg(t.upstream)}/${seg(t.tool)}`;
          return (
            <li key={id}>
              <input id={id} type="checkbox" checked={isSelected(t.upstream, t.tool)} onChange={() => toggle(t.upstream, t.tool)} />
              <label for={id}>
                <strong>{t.tool}</strong> <span class="muted">on {t.upstream}</span> <span class="description">{t.description}</span>
              </label>
            </li>
          );
        })}
      </ul>
      {selected.length > 0 && (
        <table aria-label="selected tools">
          <thead>
            <tr>
              <th scope="col">Tool</th>
              <th scope="col">Alias</th>
              <th scope="col">Description override</th>
            </tr>
          </thead>
          <tbody>
            {selected.map((s, i) => (
              <tr key={`${s.upstream}/${s.tool}`}>
                <td>
                  {s.upstream}/{s.tool}
                </td>
                <td>
                  <input aria-label={`alias of ${s.upstream}/${s.tool}`} value={s.alias ?? ""} onInput={(e) => update(i, { alias: e.currentTarget.value || undefined })} />
                </td>
                <td>
                  <input
                    aria-label={`description override of ${s.upstream}/${s.tool}`}
                    value={s.description ?? ""}
                    onInput={(e) => update(i, { description: e.currentTarget.value || undefined })}
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

/** The exposed names a preview returned. */
export function PreviewTable({ tools }: { tools: { exposedName: string; upstream: string; tool: string; hash: string }[] }) {
  return (
    <table data-testid="preview" aria-label="exposed names preview">
      <caption>Names agents will see</caption>
      <thead>
        <tr>
          <th scope="col">Exposed name</th>
          <th scope="col">Source</th>
          <th scope="col">Pinned hash</th>
        </tr>
      </thead>
      <tbody>
        {tools.map((t) => (
          <tr key={t.exposedName}>
            <td>
              <code>{t.exposedName}</code>
            </td>
            <td>
              {t.upstream}/{t.tool}
            </td>
            <td>
              <code>{shortHash(t.hash)}</code>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
