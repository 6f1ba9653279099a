import { useState } from "preact/hooks";
import { allPages, ApiError, api, seg } from "../api.js";
import { DriftDiff } from "../DriftDiff.js";
import { PreviewTable, ToolPicker, type ToolRef } from "../ToolPicker.js";
import type { DeprecatedAlias, Environment, HeldPage, PendingDrift, SelectedTool, VirtualServer } from "../types.js";
import { ErrorBox, Field, Loading, useAction, useLoad, useNamedPages, shortHash } from "../ui.js";
import { LongText } from "../LongText.js";

type Preview = { tools: { exposedName: string; upstream: string; tool: string; hash: string }[] };

export function VirtualServerDetail({ name }: { name: string }) {
  const { value: vs, error, reload } = useLoad(() => api<VirtualServer>("GET", `/v1/virtual-servers/${seg(name)}`), [name]);
  const { run, error: actionError, busy } = useAction();
  const path = `/v1/virtual-servers/${seg(name)}`;
  // The view counts what the server holds: its tools come 50 at a time, its aliases (the first 100) on their own.
  const [filter, setFilter] = useState("");
  const tools = useNamedPages<SelectedTool>(`${path}/tools`, filter, 50);
  const aliases = useLoad(() => api<HeldPage<DeprecatedAlias>>("GET", `${path}/aliases?limit=100`), [name, vs?.version]);
  const reloadAll = () => (reload(), tools.reload());
  const act = async (method: string, sub: string, body?: unknown) => {
    if (await run(() => api(method, `${path}${sub}`, body))) reloadAll();
  };
  return (
    <section>
      <p>
        <a href="#/virtual-servers">← Virtual servers</a>
      </p>
      <h1>Virtual server {name}</h1>
      <ErrorBox error={error} />
      {!vs ? (
        <Loading />
      ) : (
        <>
          <p>
            {vs.description} · version {vs.version} · naming {vs.naming.policy} · <a href={`#/drift/${seg(name)}`}>drift review</a> ·{" "}
            <a href={`#/history/virtual-servers/${seg(name)}`}>history</a>
          </p>
          <Field label="Drift policy">
            {(id) => (
              <select id={id} value={vs.driftPolicy} disabled={busy} onChange={(e) => act("PUT", "/drift-policy", { policy: e.currentTarget.value })}>
                <option value="pinned">pinned</option>
                <option value="auto-compatible">auto-compatible</option>
              </select>
            )}
          </Field>
          <ErrorBox error={actionError} />
          <h2>Tools ({vs.counts.tools})</h2>
          <Field label="Filter tools" hint="part of the exposed name">
            {(id) => <input id={id} value={filter} onInput={(e) => (setFilter(e.currentTarget.value), tools.reset())} />}
          </Field>
          <ErrorBox error={tools.error} />
          <table data-testid="selected">
            <thead>
              <tr>
                <th scope="col">Exposed name</th>
                <th scope="col">Source</th>
                <th scope="col">Description agents see</th>
                <th scope="col">Hash</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {(tools.value?.items ?? []).map((t) => (
                <tr key={t.exposedName}>
                  <td>
                    <code>{t.exposedName}</code>
                  </td>
                  <td>
                    {t.upstream}/{t.tool}
                  </td>
                  <td class="description">
                    <LongText text={t.descriptionOverride ?? t.definition.description ?? ""} />
                  </td>
                  <td>
                    <code>{shortHash(t.hash)}</code>
                  </td>
                  <td>
                    <button type="button" disabled={busy} onClick={() => act("DELETE", `/tools/${seg(t.exposedName)}`)}>
                      Remove {t.exposedName}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {tools.pager}
          {(aliases.value?.items.length ?? 0) > 0 && (
            <p>
              Deprecated aliases{aliases.value!.next ? ` (the first ${aliases.value!.items.length} of ${aliases.value!.total})` : ""}:{" "}
              {aliases.value!.items.map((a) => `${a.alias} → ${a.current}`).join(", ")}
            </p>
          )}
          <AddTools name={name} onDone={reloadAll} />
          <Environments vs={vs} onDone={reloadAll} />
        </>
      )}
    </section>
  );
}

function AddTools({ name, onDone }: { name: string; onDone: () => void }) {
  const [tools, setTools] = useState<ToolRef[]>([]);
  const [preview, setPreview] = useState<Preview>();
  const { run, error, busy } = useAction();
  const path = `/v1/virtual-servers/${seg(name)}/tools`;
  const select = async () => {
    if (await run(() => api("POST", path, { tools }))) {
      setTools([]);
      setPreview(undefined);
      onDone();
    }
  };
  return (
    <details class="panel">
      <summary>Add tools</summary>
      <ToolPicker selected={tools} onChange={(t) => (setTools(t), setPreview(undefined))} />
      <div class="actions">
        <button type="button" disabled={busy || tools.length === 0} onClick={async () => setPreview(await run(() => api<Preview>("POST", `${path}/preview`, { tools })))}>
          Preview names
        </button>
        <button type="button" disabled={busy || tools.length === 0} onClick={select}>
          Add selected tools
        </button>
      </div>
      <ErrorBox error={error} />
      {preview && <PreviewTable tools={preview.tools} />}
    </details>
  );
}

/** Pins per environment, and promotion; a refused promotion shows the differences that block it. */
function Environments({ vs, onDone }: { vs: VirtualServer; onDone: () => void }) {
  // Every environment (the registry holds at most 1,000), page after page: one page of 500 left the others unchoosable.
  const environments = useLoad(() => allPages<Environment>("/v1/environments"), []);
  const names = environments.value?.map((e) => e.name) ?? ["default"];
  const [from, setFrom] = useState("default");
  const [to, setTo] = useState("");
  const [force, setForce] = useState(false);
  const { run, error, busy } = useAction();
  const blocking = error instanceof ApiError && error.code === "definitions_differ" ? ((error.data as { differences?: PendingDrift[] })?.differences ?? []) : [];
  const promote = async (e: Event) => {
    e.preventDefault();
    if (await run(() => api("POST", `/v1/virtual-servers/${seg(vs.name)}/promote`, { from, to, force }))) onDone();
  };
  return (
    <section class="panel" aria-labelledby="env-title">
      <h2 id="env-title">Environments</h2>
      <ul>
        {Object.entries(vs.environments).map(([env, counts]) => (
          <li>
            {env}: {counts.tools} pinned tools
          </li>
        ))}
      </ul>
      <form onSubmit={promote} class="row">
        <Field label="Promote from">
          {(id) => (
            <select id={id} value={from} onChange={(e) => setFrom(e.currentTarget.value)}>
              {names.map((n) => <option value={n}>{n}</option>)}
            </select>
          )}
        </Field>
        <Field label="Promote to">
          {(id) => (
            <select id={id} value={to} onChange={(e) => setTo(e.currentTarget.value)} required>
              <option value="">choose…</option>
              {names.filter((n) => n !== "default").map((n) => <option value={n}>{n}</option>)}
            </select>
          )}
        </Field>
        <Field label="Force past differences">{(id) => <input id={id} type="checkbox" checked={force} onChange={(e) => setForce(e.currentTarget.checked)} />}</Field>
        <button type="submit" disabled={busy}>
          Promote
        </button>
      </form>
      <ErrorBox error={error ?? environments.error} />
      {blocking.map((d) => (
        <article class="panel">
          <h3>{d.exposedName} differs</h3>
          <DriftDiff drift={d} />
        </article>
      ))}
    </section>
  );
}
