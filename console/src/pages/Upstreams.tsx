import { useState } from "preact/hooks";
import { api, seg } from "../api.js";
import type { Upstream, UpstreamSummary } from "../types.js";
import { ErrorBox, Field, Loading, Status, useAction, useNamedPages } from "../ui.js";

const EXAMPLE_TRANSPORT = JSON.stringify({ type: "streamable-http", url: "http://127.0.0.1:3001/mcp", headers: {} }, null, 2);

/** The catalog: upstreams with their health and tool count, a page of 50 at a time from the registry, filtered there. */
export function Upstreams() {
  const [filter, setFilter] = useState("");
  const { value, error, reload, pager, reset } = useNamedPages<UpstreamSummary>("/v1/upstreams", filter, 50);
  return (
    <section>
      <h1>Upstreams</h1>
      <ErrorBox error={error} />
      <RegisterUpstream onDone={reload} />
      <Field label="Filter upstreams">
        {(id) => <input id={id} type="search" value={filter} onInput={(e) => (setFilter(e.currentTarget.value), reset())} />}
      </Field>
      {!value ? (
        <Loading />
      ) : (
        <>
          <table data-testid="upstreams">
            <caption>{value.total} upstreams</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Health</th>
                <th scope="col">Transport</th>
                <th scope="col">Tools</th>
                <th scope="col">Server</th>
              </tr>
            </thead>
            <tbody>
              {value.items.map((u) => (
                <tr key={u.name}>
                  <th scope="row">
                    <a href={`#/upstreams/${seg(u.name)}`}>{u.name}</a>
                  </th>
                  <td>
                    <Status value={u.health?.status ?? "unknown"} />
                  </td>
                  <td>{u.transport.type}</td>
                  <td>{u.counts.tools}</td>
                  <td>{u.serverInfo ? `${u.serverInfo.name} ${u.serverInfo.version}` : "not discovered"}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {pager}
        </>
      )}
    </section>
  );
}

function RegisterUpstream({ onDone }: { onDone: () => void }) {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [transport, setTransport] = useState(EXAMPLE_TRANSPORT);
  const { run, error, busy } = useAction();
  const [result, setResult] = useState<string>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setResult(undefined);
    const created = await run(async () => {
      const parsed: unknown = JSON.parse(transport);
      return api<Upstream>("POST", "/v1/upstreams", { name, ...(description ? { description } : {}), transport: parsed });
    });
    if (created) {
      setResult(`registered ${created.name}: ${created.tools.length} tools${created.discovery?.error ? ` (discovery: ${created.discovery.error.message})` : ""}`);
      onDone();
    }
  };
  return (
    <details class="panel">
      <summary>Register an upstream</summary>
      <form onSubmit={submit}>
        <Field label="Name">{(id) => <input id={id} required pattern="[A-Za-z0-9][A-Za-z0-9._\-]*" value={name} onInput={(e) => setName(e.currentTarget.value)} />}</Field>
        <Field label="Description">{(id) => <input id={id} value={description} onInput={(e) => setDescription(e.currentTarget.value)} />}</Field>
        <Field label="Transport (JSON)" hint="Secrets only as references: env:NAME or file:/path.">
          {(id) => <textarea id={id} rows={6} spellcheck={false} value={transport} onInput={(e) => setTransport(e.currentTarget.value)} />}
        </Field>
        <button type="submit" disabled={busy}>
          Register
        </button>
      </form>
      <ErrorBox error={error} />
      {result && <p role="status">{result}</p>}
    </details>
  );
}
