/**
 * The console's only way to the registry: the public admin API, with the admin token in the
 * Authorization header. The token lives in memory and in this tab's sessionStorage (gone when
 * the tab closes); never in a cookie, a URL or a log.
 */
const TOKEN_KEY = "manifold.adminToken";
let token: string | null = sessionStorage.getItem(TOKEN_KEY);
const listeners = new Set<() => void>();

export const hasToken = () => token !== null;
export function setToken(value: string | null): void {
  token = value;
  if (value === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, value);
  for (const listener of listeners) listener();
}
export function onTokenChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/**
 * An error answer of the admin API (`{ error: { code, message } }`), or a network failure as
 * `network_error`; `retryAfterSeconds`: its `Retry-After`, when it says when to come back (429, 503).
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly data?: unknown,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/**
 * `version`: the version of the object as shown (its `version`), sent as `If-Match`: a change made
 * meanwhile elsewhere (another operator, the CLI, a GitOps apply) is refused (409), not overwritten.
 */
export function api<T>(method: string, path: string, body?: unknown, version?: number): Promise<T> {
  return request<T>(method, path, body, token, version).catch((error: unknown) => {
    // The token was revoked or rotated: back to the sign-in page.
    if (error instanceof ApiError && error.status === 401) setToken(null);
    throw error;
  });
}

/** Checks a token against the API before keeping it: the signed-in name, or the API's refusal. */
export async function signIn(candidate: string): Promise<string> {
  const { name } = await request<{ name: string }>("GET", "/v1/whoami", undefined, candidate);
  setToken(candidate);
  return name;
}

async function request<T>(method: string, path: string, body: unknown, bearer: string | null, version?: number): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  if (version !== undefined) headers["if-match"] = `"${version}"`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "omit", cache: "no-store" });
  } catch (error) {
    throw new ApiError(0, "network_error", `the registry did not answer: ${(error as Error).message}`);
  }
  const text = await res.text();
  // An empty answer (204) reads as an empty object, so a successful call is always truthy.
  let parsed: unknown = {};
  try {
    if (text) parsed = JSON.parse(text);
  } catch {
    parsed = {};
  }
  if (!res.ok) {
    const error = (parsed as { error?: { code?: unknown; message?: unknown; data?: unknown } } | undefined)?.error;
    const code = typeof error?.code === "string" ? error.code : `http_${res.status}`;
    const message = typeof error?.message === "string" ? error.message : res.statusText || "request failed";
    const retryAfter = res.headers.get("retry-after");
    throw new ApiError(res.status, code, message, error?.data, retryAfter && /^\d{1,6}$/.test(retryAfter) ? Number(retryAfter) : undefined);
  }
  return parsed as T;
}

/** Pages read for a select at most: 5,000 entries (the registry holds at most 1,000 environments). */
const MAX_SELECT_PAGES = 10;

/** Every entry of a paged admin list (`next` followed, 500 a page), for a select that must offer each one. */
export async function allPages<T>(path: string): Promise<T[]> {
  const items: T[] = [];
  let after: string | undefined;
  for (let pages = 0; pages < MAX_SELECT_PAGES; pages++) {
    const page = await api<{ items: T[]; next?: string }>("GET", `${path}?${new URLSearchParams({ limit: "500", ...(after ? { after } : {}) }).toString()}`);
    items.push(...page.items);
    if (!page.next || page.next === after) break;
    after = page.next;
  }
  return items;
}

/** `encodeURIComponent` for path segments built from names. */
export const seg = encodeURIComponent;
