import { useState } from "preact/hooks";
import { api, seg } from "../api.js";
import { PreviewTable, ToolPicker, type ToolRef } from "../ToolPicker.js";
import type { Naming, VirtualServer, VirtualServerSummary } from "../types.js";
import { ErrorBox, Field, Loading, useAction, useNamedPages } from "../ui.js";

type Preview = { tools: { exposedName: string; upstream: string; tool: string; hash: string }[] };

/** `a=x,b=y` → `{ a: "x", b: "y" }` for the prefix naming policy. */
const parsePrefixes = (text: string) =>
  Object.fromEntries(
    text
      .split(",")
      .map((p) => p.split("=").map((s) => s.trim()))
      .filter((p): p is [string, string] => p.length === 2 && !!p[0] && !!p[1]),
  );

export function VirtualServers() {
  const [filter, setFilter] = useState("");
  const servers = useNamedPages<VirtualServerSummary>("/v1/virtual-servers", filter, 50);
  return (
    <section>
      <h1>Virtual servers</h1>
      <ErrorBox error={servers.error} />
      <Field label="Filter virtual servers">
        {(id) => <input id={id} type="search" value={filter} onInput={(e) => (setFilter(e.currentTarget.value), servers.reset())} />}
      </Field>
      {!servers.value ? (
        <Loading />
      ) : (
        <>
        <table data-testid="virtual-servers">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Tools</th>
              <th scope="col">Naming</th>
              <th scope="col">Drift policy</th>
              <th scope="col">Environments</th>
            </tr>
          </thead>
          <tbody>
            {servers.value.items.map((v) => (
              <tr key={v.name}>
                <th scope="row">
                  <a href={`#/virtual-servers/${seg(v.name)}`}>{v.name}</a>
                </th>
                <td>{v.counts.tools}</td>
                <td>{v.naming.policy}</td>
                <td>{v.driftPolicy}</td>
                <td>{Object.keys(v.environments).join(", ")}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {servers.pager}
        </>
      )}
      <Builder onDone={servers.reload} />
    </section>
  );
}

/** Pick tools, preview the names the registry's own naming rules give them, then save. */
function Builder({ onDone }: { onDone: () => void }) {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [policy, setPolicy] = useState<Naming["policy"]>("suffix");
  const [prefixes, setPrefixes] = useState("");
  const [driftPolicy, setDriftPolicy] = useState("pinned");
  const [tools, setTools] = useState<ToolRef[]>([]);
  const [preview, setPreview] = useState<Preview>();
  const { run, error, busy } = useAction();
  const body = () => ({
    name,
    ...(description ? { description } : {}),
    naming: { policy, prefixes: parsePrefixes(prefixes) },
    driftPolicy,
    tools,
  });
  const change = <T,>(set: (v: T) => void) => (v: T) => (set(v), setPreview(undefined));
  const showPreview = async () => setPreview(await run(() => api<Preview>("POST", "/v1/virtual-servers/preview", body())));
  const save = async (e: Event) => {
    e.preventDefault();
    const created = await run(() => api<VirtualServer>("POST", "/v1/virtual-servers", body()));
    if (created) {
      onDone();
      location.hash = `#/virtual-servers/${seg(created.name)}`;
    }
  };
  return (
    <section class="panel" aria-labelledby="builder-title">
      <h2 id="builder-title">New virtual server</h2>
      <form onSubmit={save}>
        <div class="row">
          <Field label="Virtual server name">{(id) => <input id={id} required value={name} onInput={(e) => change(setName)(e.currentTarget.value)} />}</Field>
          <Field label="Description">{(id) => <input id={id} value={description} onInput={(e) => setDescription(e.currentTarget.value)} />}</Field>
          <Field label="Naming policy">
            {(id) => (
              <select id={id} value={policy} onChange={(e) => change(setPolicy)(e.currentTarget.value as Naming["policy"])}>
                <option value="suffix">suffix (name_hash)</option>
                <option value="prefix">prefix (upstream_name)</option>
                <option value="bare">bare (original name)</option>
              </select>
            )}
          </Field>
          {policy === "prefix" && (
            <Field label="Prefixes" hint="upstream=prefix, comma-separated">
              {(id) => <input id={id} value={prefixes} onInput={(e) => change(setPrefixes)(e.currentTarget.value)} />}
            </Field>
          )}
          <Field label="Drift policy">
            {(id) => (
              <select id={id} value={driftPolicy} onChange={(e) => setDriftPolicy(e.currentTarget.value)}>
                <option value="pinned">pinned (review every change)</option>
                <option value="auto-compatible">auto-compatible</option>
              </select>
            )}
          </Field>
        </div>
        <ToolPicker selected={tools} onChange={change(setTools)} />
        <div class="actions">
          <button type="button" onClick={showPreview} disabled={busy || !name}>
            Preview names
          </button>
          <button type="submit" disabled={busy}>
            Create virtual server
          </button>
        </div>
      </form>
      <ErrorBox error={error} />
      {preview && <PreviewTable tools={preview.tools} />}
    </section>
  );
}
