import { useState } from "preact/hooks";
import { allPages, api, seg } from "../api.js";
import { DriftDiff } from "../DriftDiff.js";
import type { Environment, HeldPage, NamedPage, PendingDrift, PendingItemDrift, SelectedTool, Upstream, VirtualServerSummary } from "../types.js";
import { useLatestSearch } from "../latestSearch.js";
import { ErrorBox, Field, Loading, useAction, useLoad, useNamedPages } from "../ui.js";

/** Virtual servers the select offers at once (one page of the registry's list). */
const SERVERS_OFFERED = 500;

/** Besides its page of tool drift (by exposed name), a drift answer says its policy. */
interface DriftAnswer {
  policy: string;
  environment: string;
}

/** Pending drift of one virtual server in one environment; accept or reject each tool, prompt and resource. */
export function Drift({ initial }: { initial?: string | undefined }) {
  // The select offers the first 500 by name of those whose name holds what is typed in "Find"
  // (the registry filters): with more, the others were reachable by the `#/drift/<name>` route only.
  const [find, setFind] = useState("");
  const servers = useLatestSearch(find, (q) =>
    api<NamedPage<VirtualServerSummary>>("GET", `/v1/virtual-servers?${new URLSearchParams({ limit: String(SERVERS_OFFERED), ...(q.trim() ? { q: q.trim() } : {}) }).toString()}`),
  );
  // Every environment (up to 1,000), page after page: one page of 500 left the others unchoosable.
  const environments = useLoad(() => allPages<Environment>("/v1/environments"), []);
  const [server, setServer] = useState(initial ?? "");
  const [environment, setEnvironment] = useState("default");
  const chosen = server || servers.value?.items[0]?.name || "";
  return (
    <section>
      <h1>Drift review</h1>
      <ErrorBox error={servers.error ?? environments.error} />
      <div class="row">
        <Field label="Find virtual server">{(id) => <input id={id} type="search" value={find} onInput={(e) => setFind(e.currentTarget.value)} />}</Field>
        <Field label="Virtual server">
          {(id) => (
            <select id={id} value={chosen} onChange={(e) => setServer(e.currentTarget.value)}>
              {[...new Set([...(initial ? [initial] : []), ...(servers.value?.items.map((v) => v.name) ?? [])])].map((n) => (
                <option value={n}>{n}</option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Environment">
          {(id) => (
            <select id={id} value={environment} onChange={(e) => setEnvironment(e.currentTarget.value)}>
              {(environments.value ?? [{ name: "default" }]).map((e) => <option value={e.name}>{e.name}</option>)}
            </select>
          )}
        </Field>
      </div>
      {chosen ? <PendingList key={`${chosen}/${environment}`} server={chosen} environment={environment} /> : servers.value && <p>No virtual servers yet.</p>}
    </section>
  );
}

/** Drifting tools whose pinned definition is shown beside the live one; the others show their changes only. */
const MAX_PINNED_SHOWN = 50;
/** Drifting prompts, resources and templates a page. */
const MAX_ITEMS_SHOWN = 50;

/**
 * The selected tools named, each read on its own from the server's paged tools (`q`, its exposed
 * name), one at a time: the view no longer carries every pinned definition.
 */
async function pinnedOf(server: string, names: string[]): Promise<Map<string, SelectedTool>> {
  const found = new Map<string, SelectedTool>();
  for (const name of names.slice(0, MAX_PINNED_SHOWN)) {
    const page = await api<HeldPage<SelectedTool>>("GET", `/v1/virtual-servers/${seg(server)}/tools?${new URLSearchParams({ q: name, limit: "500" }).toString()}`);
    const tool = page.items.find((t) => t.exposedName === name);
    if (tool) found.set(name, tool);
  }
  return found;
}

function PendingList({ server, environment }: { server: string; environment: string }) {
  const query = `?environment=${seg(environment)}`;
  const [filter, setFilter] = useState("");
  // A page of drifting tools at a time: each shown beside its pinned definition (`MAX_PINNED_SHOWN`).
  const drift = useNamedPages<PendingDrift, DriftAnswer>(`/v1/virtual-servers/${seg(server)}/drift`, filter, MAX_PINNED_SHOWN, { environment });
  // The prompts', resources' and templates' drift, a page at a time too (by kind and key), filtered alike.
  const items = useNamedPages<PendingItemDrift>(`/v1/virtual-servers/${seg(server)}/drift/items`, filter, MAX_ITEMS_SHOWN, { environment }, "pages of prompts and resources");
  // The pinned definitions (default environment) of the drifting tools, for the side-by-side view.
  const pinnedNames = environment === "default" ? (drift.value?.items.map((d) => d.exposedName) ?? []) : [];
  const pinnedTools = useLoad(() => pinnedOf(server, pinnedNames), [server, pinnedNames.join(" ")]);
  // The live definitions: of the upstreams the drift names only, each read whole.
  const named = [...new Set(drift.value?.items.map((d) => d.upstream) ?? [])].sort();
  const upstreams = useLoad(async () => ({ named: named.join(" "), items: await Promise.all(named.map((u) => api<Upstream>("GET", `/v1/upstreams/${seg(u)}`).catch(() => undefined))) }), [server, named.join(" ")]);
  // Read for the drift shown, not one read before it.
  const live = upstreams.value?.named === named.join(" ") ? upstreams.value : undefined;
  const { run, error, busy } = useAction();
  const [done, setDone] = useState<string>();
  /** `name`: a tool's or prompt's exposed name; `uri`: a resource's exposed URI (template), which goes in the body. */
  const decide = async (d: { currentHash: string | null }, target: { name: string } | { uri: string }, decision: "accept" | "reject") => {
    // The decision is on the definition shown: one the upstream reported since is refused (409), not decided unseen.
    const reviewed = `${query}&hash=${d.currentHash ? seg(d.currentHash) : "gone"}`;
    const base = `/v1/virtual-servers/${seg(server)}`;
    const send = () => ("uri" in target ? api("POST", `${base}/resource-drift/${decision}${reviewed}`, { uri: target.uri }) : api("POST", `${base}/drift/${seg(target.name)}/${decision}${reviewed}`));
    if (await run(send)) {
      setDone(`${decision === "accept" ? "accepted" : "rejected"} drift of ${"uri" in target ? target.uri : target.name}`);
      // The decision answers only what it decided: the drift is read again, and the live definitions;
      // the view is not (the other pins it shows did not change, the decided one leaves the list).
      drift.reload();
      items.reload();
      upstreams.reload();
    }
  };
  if (drift.error ?? items.error) return <ErrorBox error={drift.error ?? items.error} />;
  if (!drift.value || !items.value) return <Loading />;
  return (
    <>
      <p>
        Drift policy: <strong>{drift.value.policy}</strong>
      </p>
      <ErrorBox error={error} />
      {done && <p role="status">{done}</p>}
      <Field label="Filter drift">
        {(id) => (
          <input
            id={id}
            type="search"
            value={filter}
            onInput={(e) => {
              setFilter(e.currentTarget.value);
              drift.reset();
              items.reset();
            }}
          />
        )}
      </Field>
      {drift.pager}
      {drift.value.items.length === 0 && items.value.items.length === 0 && <p data-testid="no-drift">No pending drift in {environment}.</p>}
      {drift.value.items.map((d) => {
        const pinned = pinnedTools.value?.get(d.exposedName)?.definition;
        const found = live?.items.find((u) => u?.name === d.upstream)?.tools.find((t) => t.name === d.tool);
        // The live definition is read apart from the drift, whose hash the decision names: one the
        // upstream reported in between would be shown while another was accepted.
        const stale = live !== undefined && (found?.hash ?? null) !== d.currentHash;
        return (
          <article class="panel" data-testid={`drift-${d.exposedName}`}>
            <h2>{d.exposedName}</h2>
            <DriftDiff drift={d} pinned={pinned} live={found?.definition} />
            {stale && (
              <p class="warning" role="alert">
                The upstream reported another definition while this page was read: reload before deciding.
              </p>
            )}
            <div class="actions">
              <button type="button" disabled={busy || stale} onClick={() => decide(d, { name: d.exposedName }, "accept")}>
                Accept {d.exposedName}
              </button>
              <button type="button" disabled={busy} onClick={() => decide(d, { name: d.exposedName }, "reject")}>
                Reject {d.exposedName}
              </button>
            </div>
          </article>
        );
      })}
      {items.value.total > 0 && items.pager}
      {items.value.items.map((d) => {
        // Prompts are decided by exposed name, like tools; resources and templates by exposed URI.
        const target = d.kind === "prompt" ? { name: d.key } : { uri: d.key };
        return (
          <article class="panel" data-testid={`drift-${d.key}`}>
            <h2>{d.key}</h2>
            <DriftDiff drift={{ ...d, exposedName: d.key, tool: `${d.kind} ${d.original}` }} />
            <div class="actions">
              <button type="button" disabled={busy} onClick={() => decide(d, target, "accept")}>
                Accept {d.key}
              </button>
              <button type="button" disabled={busy} onClick={() => decide(d, target, "reject")}>
                Reject {d.key}
              </button>
            </div>
          </article>
        );
      })}
    </>
  );
}
