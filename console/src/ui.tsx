import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import { api, ApiError } from "./api.js";
import { LongText } from "./LongText.js";
import type { NamedPage } from "./types.js";

/** An API error as text: its code and message (never markup, whatever the message holds). */
export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const code = error instanceof ApiError ? error.code : "console_error";
  const message = error instanceof Error ? error.message : String(error);
  return (
    <div class="error" role="alert">
      <strong class="code">{code}</strong> <span>{message}</span>
    </div>
  );
}

/** Loads once (and again on `reload`), keeping the last value while it reloads. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]) {
  const [value, setValue] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    load().then(
      (v) => live && (setValue(v), setError(undefined)),
      (e: unknown) => live && setError(e),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { value, error, reload };
}

/** Runs an action, keeping its error (shown next to the control) and whether it is busy. */
export function useAction() {
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const run = useCallback(async <T,>(action: () => Promise<T>): Promise<T | undefined> => {
    setBusy(true);
    setError(undefined);
    try {
      return await action();
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { run, error, busy };
}

let ids = 0;
/** A labelled control: the label's `for` names the control's id. */
export function Field({ label, hint, children }: { label: string; hint?: string; children: (id: string) => ComponentChildren }) {
  const [id] = useState(() => `f${++ids}`);
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {children(id)}
      {hint && <small>{hint}</small>}
    </div>
  );
}

/**
 * A value as JSON (hidden characters are marked in every text: `revealHiddenInEveryText`): its first
 * 20,000 characters until asked for the rest, as a definition or event may hold an upstream's
 * ~900 KB description (`LongText`).
 */
export const Json = ({ value }: { value: unknown }) => (
  <pre class="json">
    <LongText text={JSON.stringify(value, null, 2) ?? ""} shown={20_000} />
  </pre>
);

export function Status({ value }: { value: string }) {
  return <span class={`status status-${value.replace(/[^a-z-]/g, "")}`}>{value}</span>;
}

export const Loading = () => <p aria-live="polite">Loading…</p>;

/** Pages a long list: `size` rows at a time, with labelled previous/next buttons. */
export function usePaging<T>(items: T[], size: number) {
  const [page, setPage] = useState(0);
  const pages = Math.max(1, Math.ceil(items.length / size));
  const current = Math.min(page, pages - 1);
  const rows = items.slice(current * size, current * size + size);
  const pager = (
    <nav class="pager" aria-label="pages">
      <button type="button" disabled={current === 0} onClick={() => setPage(current - 1)}>
        Previous
      </button>
      <span>
        Page {current + 1} of {pages} ({items.length})
      </span>
      <button type="button" disabled={current >= pages - 1} onClick={() => setPage(current + 1)}>
        Next
      </button>
    </nav>
  );
  return { rows, pager, reset: () => setPage(0) };
}
export const shortHash = (hash: string) => hash.replace(/^sha256:/, "").slice(0, 12);

/**
 * Pages an admin list on the registry (`limit`, `after`, `q`): one page in the browser at a time,
 * whatever the registry holds. Previous goes back along the cursors seen. `params`: the list's own
 * query (the drift's `environment`); `Extra`: what its answer holds besides the page; `label`: the
 * pager's, when a page holds two lists.
 */
export function useNamedPages<T, Extra = object>(path: string, filter: string, size: number, params: Record<string, string> = {}, label = "pages") {
  const [cursors, setCursors] = useState<string[]>([]);
  const after = cursors[cursors.length - 1];
  const query = new URLSearchParams({ ...params, limit: String(size), ...(filter.trim() ? { q: filter.trim() } : {}), ...(after ? { after } : {}) });
  const load = useLoad(() => api<NamedPage<T> & Extra>("GET", `${path}?${query.toString()}`), [path, query.toString()]);
  const page = load.value;
  const pages = Math.max(1, Math.ceil((page?.total ?? 0) / size));
  const pager = (
    <nav class="pager" aria-label={label}>
      <button type="button" disabled={cursors.length === 0} onClick={() => setCursors(cursors.slice(0, -1))}>
        Previous
      </button>
      <span>
        Page {cursors.length + 1} of {pages} ({page?.total ?? 0})
      </span>
      <button type="button" disabled={!page?.next} onClick={() => page?.next && setCursors([...cursors, page.next])}>
        Next
      </button>
    </nav>
  );
  return { ...load, pager, reset: () => setCursors([]) };
}
