import { useState } from "preact/hooks";
import { api, seg } from "../api.js";
import type { Upstream } from "../types.js";
import { ErrorBox, Field, Json, Loading, Status, useAction, useLoad, usePaging, shortHash } from "../ui.js";
import { LongText } from "../LongText.js";
import { stillWithheld } from "../withheldFields.js";

/** One upstream: health per connector replica, transport (secrets are references only), tools with hashes. */
export function UpstreamDetail({ name }: { name: string }) {
  const { value: u, error, reload } = useLoad(() => api<Upstream>("GET", `/v1/upstreams/${seg(name)}`), [name]);
  const { run, error: actionError, busy } = useAction();
  const [note, setNote] = useState<string>();
  /** What a discovery (asked for, or run by a change of settings) found: a failure is shown, not swallowed. */
  const discovered = (r: Upstream) => setNote(`discovery ${r.discovery?.status ?? "done"}: ${r.tools.length} tools${r.discovery?.error ? ` (${r.discovery.error.code}: ${r.discovery.error.message})` : ""}`);
  const rediscover = async () => {
    const r = await run(() => api<Upstream>("POST", `/v1/upstreams/${seg(name)}/discover`));
    if (r) {
      discovered(r);
      reload();
    }
  };
  return (
    <section>
      <p>
        <a href="#/upstreams">← Upstreams</a>
      </p>
      <h1>Upstream {name}</h1>
      <ErrorBox error={error} />
      {!u ? (
        <Loading />
      ) : (
        <>
          <p>{u.description}</p>
          {u.listChanges?.heldUntil && (
            <p role="note">
              Its tool-list changes are over the hourly budget: the next is recorded after {new Date(u.listChanges.heldUntil).toLocaleString()}, and drift
              from it shows only then.
            </p>
          )}
          <p>
            Health <Status value={u.health?.status ?? "unknown"} /> · version {u.version} · server {u.serverInfo ? `${u.serverInfo.name} ${u.serverInfo.version}` : "not discovered"} · MCP{" "}
            {u.protocolVersion ?? "unknown"} ·{" "}
            <a href={`#/history/upstreams/${seg(name)}`}>history</a>
          </p>
          <div class="actions">
            <button type="button" onClick={rediscover} disabled={busy}>
              Rediscover tools
            </button>
          </div>
          <ErrorBox error={actionError} />
          {note && <p role="status">{note}</p>}
          <h2>Replicas</h2>
          {(u.health?.replicas.length ?? 0) === 0 ? (
            <p>No connector replica has reported on this upstream recently.</p>
          ) : (
            <table>
              <thead>
                <tr>
                  <th scope="col">Replica</th>
                  <th scope="col">Status</th>
                  <th scope="col">Circuit</th>
                  <th scope="col">Reason</th>
                  <th scope="col">Reported</th>
                </tr>
              </thead>
              <tbody>
                {u.health!.replicas.map((r) => (
                  <tr key={r.replica}>
                    <td>{r.replica}</td>
                    <td>
                      <Status value={r.status} />
                    </td>
                    <td>
                      <Status value={r.circuit} />
                    </td>
                    <td>{r.reason ?? ""}</td>
                    <td>{new Date(r.at).toLocaleString()}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <h2>Transport</h2>
          <Json value={{ transport: u.transport, options: u.options }} />
          {/* Keyed by the version: the form starts again from what is stored after any change, ours or another's. */}
          <EditUpstream
            key={u.version}
            upstream={u}
            onDone={(r) => {
              if (r.discovery) discovered(r);
              reload();
            }}
          />
          <ToolsTable tools={u.tools} />
        </>
      )}
    </section>
  );
}

/**
 * The upstream's tools, 50 rows at a time: the list is the upstream's to choose, and one that
 * listed 6,500 tiny tools (what fits in one bus message) put 6,500 rows in the page at once.
 */
function ToolsTable({ tools }: { tools: Upstream["tools"] }) {
  const { rows, pager } = usePaging(tools, 50);
  return (
    <>
      <h2>Tools ({tools.length})</h2>
      {tools.length > 50 && pager}
      <table data-testid="tools">
        <thead>
          <tr>
            <th scope="col">Tool</th>
            <th scope="col">Description</th>
            <th scope="col">Hash</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((t) => (
            <tr key={t.name}>
              <td>{t.name}</td>
              <td class="description">
                <LongText text={t.definition.description ?? ""} />
                {t.unpublishedParamHeaders?.map((p) => (
                  <p role="note" key={p.path + (p.header ?? "")}>
                    Published without x-mcp-header {p.header ?? "(not a string)"} on {p.path || "the schema"}: {p.reason}
                  </p>
                ))}
              </td>
              <td>
                <code>{shortHash(t.hash)}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function EditUpstream({ upstream, onDone }: { upstream: Upstream; onDone: (saved: Upstream) => void }) {
  const [description, setDescription] = useState(upstream.description ?? "");
  const [transport, setTransport] = useState(JSON.stringify(upstream.transport, null, 2));
  const [dropWithheld, setDropWithheld] = useState(false);
  const [unsaved, setUnsaved] = useState<string[]>([]);
  const withheld = upstream.literalSecrets ?? [];
  const { run, error, busy } = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    const saved = await run(async () => {
      const edited = JSON.parse(transport) as unknown;
      // A save of what is shown would drop the withheld credentials without a word: the operator says so first.
      const kept = dropWithheld ? [] : stillWithheld(upstream.transport, edited, withheld);
      setUnsaved(kept);
      if (kept.length > 0) return undefined;
      // Sent with the version the form was filled from: a change made meanwhile is refused (409), not undone.
      return api<Upstream>("PUT", `/v1/upstreams/${seg(upstream.name)}`, { ...(description ? { description } : {}), transport: edited, options: upstream.options }, upstream.version);
    });
    if (saved) onDone(saved);
  };
  return (
    <details class="panel">
      <summary>Edit</summary>
      <form onSubmit={submit}>
        <Field label="Description">{(id) => <input id={id} value={description} onInput={(e) => setDescription(e.currentTarget.value)} />}</Field>
        <Field label="Transport (JSON)" hint="Secrets only as references: env:NAME or file:/path.">
          {(id) => <textarea id={id} rows={6} spellcheck={false} value={transport} onInput={(e) => setTransport(e.currentTarget.value)} />}
        </Field>
        {withheld.length > 0 && (
          <div class="warning" role="note">
            <p>
              Recorded before literal secrets were refused, and withheld here: {withheld.join(", ")}. A save cannot keep them: give each as a reference (secretHeaders or
              secretEnv: env:NAME or file:/path) or take it out.
            </p>
            <label>
              <input type="checkbox" checked={dropWithheld} onChange={(e) => setDropWithheld(e.currentTarget.checked)} /> Save without the withheld values
            </label>
          </div>
        )}
        {unsaved.length > 0 && (
          <div class="error" role="alert">
            Not saved: {unsaved.join(", ")} still {unsaved.length === 1 ? "holds its" : "hold their"} withheld value. Replace {unsaved.length === 1 ? "it" : "them"}, or tick
            &ldquo;Save without the withheld values&rdquo;.
          </div>
        )}
        <button type="submit" disabled={busy}>
          Save
        </button>
      </form>
      <ErrorBox error={error} />
    </details>
  );
}
