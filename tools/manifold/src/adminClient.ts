import { readFile } from "node:fs/promises";

export interface AdminTarget {
  url: string;
  token: string;
}

/** What a bearer token may hold in a header: anything else makes fetch refuse it, quoting it. */
const TOKEN = /^[\x21-\x7e]+$/;

/**
 * Where the admin API is and how to authenticate: the environment, else the all-in-one's data folder.
 * Refused here, by name and never by value: a URL carrying a user or password, and a token a header
 * cannot carry (fetch's own refusals quote the whole URL or header, and the CLI prints errors).
 */
export async function adminTarget(env: Record<string, string | undefined>): Promise<AdminTarget> {
  let url: URL;
  try {
    url = new URL(env.MANIFOLD_REGISTRY_URL ?? "http://127.0.0.1:8081");
  } catch {
    throw new Error("MANIFOLD_REGISTRY_URL is not a URL");
  }
  if (url.username || url.password) throw new Error("MANIFOLD_REGISTRY_URL must not carry a user name or password: the admin token goes in MANIFOLD_ADMIN_TOKEN");
  const token = env.MANIFOLD_ADMIN_TOKEN ?? (await readFile(`${env.MANIFOLD_DATA_DIR ?? ".manifold"}/admin-token`, "utf8").catch(() => "")).trim();
  if (!token) throw new Error("set MANIFOLD_ADMIN_TOKEN (or run where .manifold/admin-token exists)");
  if (!TOKEN.test(token)) throw new Error("the admin token (MANIFOLD_ADMIN_TOKEN or .manifold/admin-token) holds a space, line break or other character a header cannot carry");
  // Paths are appended to it: `https://host/admin/` and `https://host/admin` are the same registry.
  return { url: `${url.origin}${url.pathname.replace(/\/+$/, "")}`, token };
}

/** A non-2xx answer: the API's code and message, and the HTTP status. */
export type AdminError = Error & { status: number };

/** How many times a call refused with 429 is sent again, after the `Retry-After` it was told. */
const RETRIES_AFTER_429 = 5;

/**
 * One admin API call; a non-2xx answer becomes an error carrying the API's code and message. A 429
 * (`rate_limited`, `too_many_reads`) is refused before any work, so it is sent again after its
 * `Retry-After`: a long `manifold apply` or an export's history reads wait rather than fail.
 */
export async function adminCall(target: AdminTarget, method: string, path: string, body?: unknown): Promise<any> {
  const send = () =>
    fetch(`${target.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${target.token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  let res = await send();
  for (let retry = 0; res.status === 429 && retry < RETRIES_AFTER_429; retry++) {
    const wait = Number(res.headers.get("retry-after"));
    if (!Number.isFinite(wait) || wait < 0 || wait > 60) break;
    await res.arrayBuffer();
    await new Promise((resolve) => setTimeout(resolve, wait * 1_000));
    res = await send();
  }
  const text = await res.text();
  const json = text ? JSON.parse(text) : undefined;
  if (!res.ok) throw Object.assign(new Error(`${method} ${path}: ${res.status} ${json?.error?.code ?? ""} ${json?.error?.message ?? ""}`.trim()), { status: res.status });
  return json;
}
