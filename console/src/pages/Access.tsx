import { useState } from "preact/hooks";
import { api, seg } from "../api.js";
import type { Consumer, Grant, HeldPage, NamedPage, VirtualServerSummary } from "../types.js";
import { ErrorBox, Field, Loading, useAction, useLoad, useNamedPages } from "../ui.js";

const list = (text: string) =>
  text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

/** Consumers with their keys and groups, and the grants of each virtual server. */
export function Access() {
  const [filter, setFilter] = useState("");
  // Up to 100,000 of them: a page of 50 from the registry at a time, filtered there.
  const consumers = useNamedPages<Consumer>("/v1/consumers", filter, 50);
  return (
    <section>
      <h1>Consumers, keys and grants</h1>
      <ErrorBox error={consumers.error} />
      <CreateConsumer onDone={consumers.reload} />
      <Field label="Filter consumers">
        {(id) => <input id={id} type="search" value={filter} onInput={(e) => (setFilter(e.currentTarget.value), consumers.reset())} />}
      </Field>
      {!consumers.value ? <Loading /> : consumers.value.items.map((c) => <ConsumerCard key={c.name} consumer={c} onDone={consumers.reload} />)}
      {consumers.pager}
      <Grants consumers={consumers.value?.items ?? []} />
    </section>
  );
}

function CreateConsumer({ onDone }: { onDone: () => void }) {
  const [name, setName] = useState("");
  const [groups, setGroups] = useState("");
  const { run, error, busy } = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    if (await run(() => api("POST", "/v1/consumers", { name, groups: list(groups) }))) {
      setName("");
      setGroups("");
      onDone();
    }
  };
  return (
    <form class="panel row" onSubmit={submit} aria-label="new consumer">
      <Field label="Consumer name">{(id) => <input id={id} required value={name} onInput={(e) => setName(e.currentTarget.value)} />}</Field>
      <Field label="Groups" hint="comma-separated">
        {(id) => <input id={id} value={groups} onInput={(e) => setGroups(e.currentTarget.value)} />}
      </Field>
      <button type="submit" disabled={busy}>
        Create consumer
      </button>
      <ErrorBox error={error} />
    </form>
  );
}

function ConsumerCard({ consumer, onDone }: { consumer: Consumer; onDone: () => void }) {
  const [issued, setIssued] = useState<{ keyId: string; key: string }>();
  const [copied, setCopied] = useState(false);
  const [groups, setGroups] = useState(consumer.groups.join(", "));
  const { run, error, busy } = useAction();
  const path = `/v1/consumers/${seg(consumer.name)}`;
  const issue = async () => {
    setCopied(false);
    const key = await run(() => api<{ keyId: string; key: string }>("POST", `${path}/keys`));
    if (key) {
      setIssued(key);
      onDone();
    }
  };
  const revoke = async (keyId: string) => {
    if (await run(() => api("DELETE", `${path}/keys/${seg(keyId)}`))) {
      if (issued?.keyId === keyId) setIssued(undefined);
      onDone();
    }
  };
  const copy = async () => {
    if (!issued) return;
    await run(() => navigator.clipboard.writeText(issued.key));
    setCopied(true);
  };
  const saveGroups = async (e: Event) => {
    e.preventDefault();
    // A PUT replaces the description, groups and identity providers: the others are sent as shown,
    // and the version shown with them, so a change made meanwhile is refused rather than undone.
    const body = { ...(consumer.description ? { description: consumer.description } : {}), groups: list(groups), identityProviders: consumer.identityProviders };
    if (await run(() => api("PUT", path, body, consumer.version))) onDone();
  };
  return (
    <article class="panel" data-testid={`consumer-${consumer.name}`}>
      <h2>{consumer.name}</h2>
      <p>
        {consumer.description} <a href={`#/history/consumers/${seg(consumer.name)}`}>history</a>
      </p>
      {consumer.identityProviders.length > 0 && <p>Identity providers: {consumer.identityProviders.join(", ")}</p>}
      <form class="row" onSubmit={saveGroups}>
        <Field label={`Groups of ${consumer.name}`}>{(id) => <input id={id} value={groups} onInput={(e) => setGroups(e.currentTarget.value)} />}</Field>
        <button type="submit" disabled={busy}>
          Save groups
        </button>
      </form>
      <h3>Keys</h3>
      <ul aria-label={`keys of ${consumer.name}`}>
        {consumer.keys.map((k) => (
          <li key={k.keyId}>
            <code>{k.keyId}</code>{" "}
            <button type="button" disabled={busy} onClick={() => revoke(k.keyId)}>
              Revoke {k.keyId}
            </button>
          </li>
        ))}
      </ul>
      <button type="button" disabled={busy} onClick={issue}>
        Issue a key for {consumer.name}
      </button>
      {issued && (
        <div class="once" role="status">
          <p>
            Key <code>{issued.keyId}</code> — shown only now; store it:
          </p>
          <output data-testid="issued-key">{issued.key}</output>{" "}
          <button type="button" onClick={copy}>
            {copied ? "Copied" : "Copy key"}
          </button>
        </div>
      )}
      <ErrorBox error={error} />
    </article>
  );
}

const subjectText = (g: Grant) => ("consumer" in g.subject ? `consumer ${g.subject.consumer}` : `group ${g.subject.group}`);
/** Denied tools, then prompts and resources (set through the API or `manifold apply`), by identity. */
const deniedText = (g: Grant) =>
  [
    ...g.deniedTools.map((d) => (typeof d === "string" ? d : `${d.upstream}/${d.tool}`)),
    ...(g.deniedPrompts ?? []).map((p) => `prompt ${p.upstream}/${p.prompt}`),
    ...(g.deniedResources ?? []).map((r) => `resource ${r.upstream}/${"uri" in r ? r.uri : r.uriTemplate}`),
  ].join(", ");

function Grants({ consumers }: { consumers: Consumer[] }) {
  // Names for the select (the first 500); the chosen one's grants from its own view.
  const servers = useLoad(() => api<NamedPage<VirtualServerSummary>>("GET", "/v1/virtual-servers?limit=500"), []);
  const [server, setServer] = useState("");
  const name = server || servers.value?.items[0]?.name || "";
  // The chosen server's grants, 50 at a time from their own route (its view counts them).
  const path = `/v1/virtual-servers/${seg(name)}/grants`;
  const detail = useNamedPages<Grant>(path, "", 50);
  const page = detail.value as HeldPage<Grant> | undefined;
  const chosen = name && page?.virtualServer === name ? { name, grants: page.items } : undefined;
  const [kind, setKind] = useState<"consumer" | "group">("consumer");
  const [subject, setSubject] = useState("");
  const [denied, setDenied] = useState("");
  const [rate, setRate] = useState("");
  const [environment, setEnvironment] = useState("");
  const { run, error, busy } = useAction();
  if (!servers.value) return <ErrorBox error={servers.error} />;
  if (!name) return <p>No virtual servers to grant access to yet.</p>;
  if (!chosen) return detail.error ? <ErrorBox error={detail.error} /> : <Loading />;
  const grant = async (e: Event) => {
    e.preventDefault();
    const body = {
      subject: kind === "consumer" ? { consumer: subject } : { group: subject },
      deniedTools: list(denied),
      ...(rate ? { rateLimitPerMinute: Number(rate) } : {}),
      ...(environment ? { environment } : {}),
    };
    if (await run(() => api("POST", path, body))) detail.reload();
  };
  const revoke = async (grantId: string) => {
    if (await run(() => api("DELETE", `${path}/${seg(grantId)}`))) detail.reload();
  };
  return (
    <section class="panel" aria-labelledby="grants-title">
      <h2 id="grants-title">Grants</h2>
      <Field label="Grants of virtual server">
        {(id) => (
          <select id={id} value={chosen.name} onChange={(e) => (setServer(e.currentTarget.value), detail.reset())}>
            {[...new Set([name, ...servers.value!.items.map((v) => v.name)])].map((n) => <option value={n}>{n}</option>)}
          </select>
        )}
      </Field>
      <table>
        <thead>
          <tr>
            <th scope="col">Subject</th>
            <th scope="col">Denied tools</th>
            <th scope="col">Rate limit / min</th>
            <th scope="col">Environment</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {chosen.grants.map((g) => (
            <tr key={g.grantId}>
              <td>{subjectText(g)}</td>
              <td>{deniedText(g)}</td>
              <td>{g.rateLimitPerMinute ?? "unlimited"}</td>
              <td>{g.environment ?? "all"}</td>
              <td>
                <button type="button" disabled={busy} onClick={() => revoke(g.grantId)}>
                  Revoke grant {g.grantId}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {detail.pager}
      <form class="row" onSubmit={grant} aria-label="new grant">
        <Field label="Subject kind">
          {(id) => (
            <select id={id} value={kind} onChange={(e) => setKind(e.currentTarget.value as "consumer" | "group")}>
              <option value="consumer">consumer</option>
              <option value="group">group</option>
            </select>
          )}
        </Field>
        <Field label="Subject">
          {(id) => (
            <>
              <input id={id} required list="consumer-names" value={subject} onInput={(e) => setSubject(e.currentTarget.value)} />
              <datalist id="consumer-names">
                {consumers.map((c) => (
                  <option value={c.name} />
                ))}
              </datalist>
            </>
          )}
        </Field>
        <Field label="Denied tools" hint="exposed names, comma-separated">
          {(id) => <input id={id} value={denied} onInput={(e) => setDenied(e.currentTarget.value)} />}
        </Field>
        <Field label="Rate limit per minute">{(id) => <input id={id} type="number" min={1} value={rate} onInput={(e) => setRate(e.currentTarget.value)} />}</Field>
        <Field label="Only in environment">{(id) => <input id={id} value={environment} onInput={(e) => setEnvironment(e.currentTarget.value)} />}</Field>
        <button type="submit" disabled={busy}>
          Grant access
        </button>
      </form>
      <ErrorBox error={error} />
    </section>
  );
}
