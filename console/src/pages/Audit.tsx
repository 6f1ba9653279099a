import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "../api.js";
import type { AuditRecord, Page } from "../types.js";
import { ErrorBox, Field, Status, useLoad } from "../ui.js";

const FILTERS = [
  ["virtualServer", "Virtual server"],
  ["consumer", "Consumer"],
  ["tool", "Tool"],
  ["upstream", "Upstream"],
] as const;
type Filters = Record<(typeof FILTERS)[number][0] | "outcome" | "since" | "until", string>;
const EMPTY: Filters = { virtualServer: "", consumer: "", tool: "", upstream: "", outcome: "", since: "", until: "" };
const PAGE = 50;

/** Builds the query: empty filters left out, local times sent as ISO instants. */
function queryOf(filters: Filters, after?: number): string {
  const params = new URLSearchParams({ limit: String(PAGE) });
  for (const [key, value] of Object.entries(filters)) {
    if (!value) continue;
    params.set(key, key === "since" || key === "until" ? new Date(value).toISOString() : value);
  }
  if (after !== undefined) params.set("after", String(after));
  return params.toString();
}

/** The trace viewer link, when the registry was given one (`CONSOLE_TRACE_URL`). */
function useTraceUrl() {
  return useLoad(() => fetch("/console/config.json").then((r) => r.json() as Promise<{ traceUrl: string | null }>), []).value?.traceUrl ?? null;
}

export function Audit() {
  const [draft, setDraft] = useState<Filters>(EMPTY);
  const [filters, setFilters] = useState<Filters>(EMPTY);
  const [records, setRecords] = useState<AuditRecord[]>([]);
  const [next, setNext] = useState<number>();
  const [error, setError] = useState<unknown>();
  const [tail, setTail] = useState(false);
  const traceUrl = useTraceUrl();
  /** The newest record read, by the first page, the tail or More alike: one cursor, so no record shows twice. */
  const last = useRef<number | undefined>(undefined);
  /** Reads in turn (the first page, the tail's, More's), each from where the one before stopped. */
  const reads = useRef<Promise<void>>(Promise.resolve());
  const waiting = useRef(0);
  /** Counts filter changes: a read made for the filters before is dropped, not shown under the new ones. */
  const generation = useRef(0);

  const load = async (after?: number) => {
    try {
      const page = await api<Page<AuditRecord>>("GET", `/v1/audit?${queryOf(filters, after)}`);
      setError(undefined);
      return page;
    } catch (e) {
      setError(e);
      return undefined;
    }
  };
  /** Queues a read after the ones already queued; `first` starts the list over (new filters). */
  const read = (first: boolean) => {
    const made = generation.current;
    waiting.current++;
    const step = async () => {
      try {
        if (made !== generation.current) return;
        const page = await load(first ? undefined : (last.current ?? 0));
        if (!page || made !== generation.current) return;
        last.current = page.items.at(-1)?.sequence ?? page.next ?? (first ? undefined : last.current);
        setNext(page.next);
        if (first) setRecords(page.items);
        else if (page.items.length > 0) setRecords((shown) => [...shown, ...page.items].slice(-1000));
      } finally {
        waiting.current--;
      }
    };
    reads.current = reads.current.then(step);
    return reads.current;
  };
  useEffect(() => {
    generation.current++;
    last.current = undefined;
    setRecords([]);
    void read(true);
  }, [filters]);
  // Live tail: every two seconds, whatever arrived after the newest record read. A page the
  // registry cut short says where it stopped (`next`): the tail goes on from there, or a filter
  // matching little of a long stream would read the same stretch again and again. A tick while a
  // read is still queued adds none (a slow registry would otherwise pile them up).
  useEffect(() => {
    if (!tail) return;
    const timer = setInterval(() => {
      if (waiting.current === 0) void read(false);
    }, 2_000);
    return () => clearInterval(timer);
  }, [tail, filters]);

  const more = () => void read(false);
  const set = (key: keyof Filters) => (e: { currentTarget: { value: string } }) => setDraft({ ...draft, [key]: e.currentTarget.value });
  return (
    <section>
      <h1>Audit</h1>
      <form
        class="row panel"
        aria-label="audit filters"
        onSubmit={(e) => {
          e.preventDefault();
          setFilters(draft);
        }}
      >
        {FILTERS.map(([key, label]) => (
          <Field label={label}>{(id) => <input id={id} value={draft[key]} onInput={set(key)} />}</Field>
        ))}
        <Field label="Outcome">
          {(id) => (
            <select id={id} value={draft.outcome} onChange={set("outcome")}>
              <option value="">any</option>
              <option value="ok">ok</option>
              <option value="error">error</option>
              <option value="input_required">input_required</option>
            </select>
          )}
        </Field>
        <Field label="Since">{(id) => <input id={id} type="datetime-local" value={draft.since} onInput={set("since")} />}</Field>
        <Field label="Until">{(id) => <input id={id} type="datetime-local" value={draft.until} onInput={set("until")} />}</Field>
        <button type="submit">Apply filters</button>
        <Field label="Live tail">{(id) => <input id={id} type="checkbox" checked={tail} onChange={(e) => setTail(e.currentTarget.checked)} />}</Field>
      </form>
      <ErrorBox error={error} />
      <table data-testid="audit">
        <caption>{records.length} records, oldest first</caption>
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Virtual server</th>
            <th scope="col">Consumer</th>
            <th scope="col">Tool</th>
            <th scope="col">Upstream</th>
            <th scope="col">Outcome</th>
            <th scope="col">ms</th>
            <th scope="col">Trace</th>
          </tr>
        </thead>
        <tbody>
          {records.map((r) => (
            <tr key={r.sequence}>
              <td>{new Date(r.at).toLocaleString()}</td>
              <td>
                {r.virtualServer} ({r.environment})
              </td>
              <td>{r.consumer}</td>
              <td>{r.exposedTool}</td>
              <td>
                {r.upstream}/{r.tool}
              </td>
              <td>
                <Status value={r.outcome} /> {r.errorCode ?? ""}
              </td>
              <td>{Math.round(r.durationMs)}</td>
              <td>
                {r.traceId && traceUrl ? (
                  <a href={traceUrl.replace("{traceId}", encodeURIComponent(r.traceId))} target="_blank" rel="noopener noreferrer">
                    {r.traceId.slice(0, 12)}
                  </a>
                ) : (
                  <code>{r.traceId?.slice(0, 12) ?? ""}</code>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {next !== undefined && (
        <button type="button" onClick={more}>
          More records…
        </button>
      )}
    </section>
  );
}
