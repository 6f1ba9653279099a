import { useMemo, useState } from "preact/hooks";
import { seg } from "./api.js";
import type { Upstream } from "./types.js";
import { Field, shortHash } from "./ui.js";

/** A tool to select, with its optional alias and description override (the API's ToolRef). */
export interface ToolRef {
  upstream: string;
  tool: string;
  alias?: string;
  description?: string;
}
const MAX_SHOWN = 100;

/** Search across every upstream's tools; the first hundred matches are offered. */
export function ToolPicker({ upstreams, selected, onChange }: { upstreams: Upstream[]; selected: ToolRef[]; onChange: (refs: ToolRef[]) => void }) {
  const [search, setSearch] = useState("");
  const all = useMemo(() => upstreams.flatMap((u) => u.tools.map((t) => ({ upstream: u.name, tool: t.name, description: t.definition.description ?? "" }))), [upstreams]);
  const needle = search.trim().toLowerCase();
  const matches = useMemo(
    () => (needle ? all.filter((t) => `${t.upstream} ${t.tool} ${t.description}`.toLowerCase().includes(needle)) : all).slice(0, MAX_SHOWN),
    [all, needle],
  );
  const isSelected = (u: string, t: string) => selected.some((s) => s.upstream === u && s.tool === t);
  const toggle = (u: string, t: string) =>
    onChange(isSelected(u, t) ? selected.filter((s) => !(s.upstream === u && s.tool === t)) : [...selected, { upstream: u, tool: t }]);
  const update = (i: number, patch: Partial<ToolRef>) => onChange(selected.map((s, j) => (i === j ? { ...s, ...patch } : s)));
  return (
    <div class="picker">
      <Field label="Search tools" hint={`${all.length} tools across ${upstreams.length} upstreams; the first ${MAX_SHOWN} matches are listed`}>
        {(id) => <input id={id} type="search" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />}
      </Field>
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
