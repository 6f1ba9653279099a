import { useEffect, useState } from "preact/hooks";
import { api, seg } from "../api.js";
import type { HistoryEntry, Page } from "../types.js";
import { ErrorBox, Json } from "../ui.js";

/** Every change of one object, oldest first, with its actor and time. */
export function History({ collection, name }: { collection: string; name: string }) {
  const [entries, setEntries] = useState<HistoryEntry[]>([]);
  const [next, setNext] = useState<number>();
  const [error, setError] = useState<unknown>();
  const load = async (after?: number) => {
    try {
      const page = await api<Page<HistoryEntry>>("GET", `/v1/${seg(collection)}/${seg(name)}/history?limit=100${after === undefined ? "" : `&after=${after}`}`);
      setEntries((shown) => (after === undefined ? page.items : [...shown, ...page.items]));
      setNext(page.next);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    void load();
  }, [collection, name]);
  return (
    <section>
      <p>
        {/* Consumers are shown on the access page, which has no page per consumer. */}
        <a href={collection === "consumers" ? "#/access" : `#/${seg(collection)}/${seg(name)}`}>← {name}</a>
      </p>
      <h1>
        History of {name}
      </h1>
      <ErrorBox error={error} />
      <ol class="history" data-testid="history">
        {entries.map((e) => (
          <li key={e.sequence}>
            <details>
              <summary>
                <time dateTime={e.at}>{new Date(e.at).toLocaleString()}</time> · <strong>{e.type}</strong> · {e.actor ?? "unknown"} · #{e.sequence}
              </summary>
              <Json value={e.data} />
            </details>
          </li>
        ))}
      </ol>
      {next !== undefined && (
        <button type="button" onClick={() => load(next)}>
          Later changes…
        </button>
      )}
    </section>
  );
}
