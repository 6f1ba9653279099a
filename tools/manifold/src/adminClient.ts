import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
// undici's own fetch, not Node 20's: the one bundled with Node (undici 6.24) never settled a
// request whose connection the peer reset, and the CLI exited 13 without a word (`cliResend.e2e`).
import { fetch, type Response } from "undici";

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

/** A non-2xx answer: the API's code and message, and the HTTP status, code and data. */
export type AdminError = Error & { status: number; code?: string; data?: unknown };

/**
 * A call refused before it was done, and when to send it again: 429 (`rate_limited`,
 * `too_many_reads`) and 503 (`bus_unavailable` while NATS is away or recovering, `at_capacity`)
 * say so in `Retry-After`; a 503 that names no wait gets a second, as the registry's own do.
 */
const RESENT_STATUSES = new Set([429, 503]);
/** Resends of one call at most, and the most time spent waiting between them in all (docs/errors.md, Retry-After). */
const MAX_RESENDS = 8;
const MAX_RESEND_WAIT_MS = 15_000;

/**
 * The wait before resending after the connection was refused or dropped: a registry replica
 * restarted in ~1 s here (`cliResend.e2e`), and a load balancer moves to another at once.
 */
const DROPPED_RESEND_MS = 500;
/** What undici names a refused or dropped connection (`fetch failed`, its `cause`): worth sending again. */
const DROPPED = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "UND_ERR_SOCKET", "UND_ERR_CLOSED"]);

/**
 * One attempt: the answer, or the error of a connection refused or dropped, named by its code
 * (fetch's own says only "fetch failed"); anything else (a name that does not resolve) is thrown.
 */
async function reach(send: () => Promise<Response>, target: AdminTarget): Promise<Response | Error> {
  try {
    return await send();
  } catch (error) {
    const code = (error as { cause?: { code?: unknown } }).cause?.code;
    const reason = typeof code === "string" ? code : "no answer";
    const reached = new Error(`could not reach the registry at ${target.url} (${reason})`, { cause: error });
    if (typeof code === "string" && DROPPED.has(code)) return reached;
    throw reached;
  }
}

/** The wait a refusal asks for, in ms; undefined when it names one that is not whole seconds (an HTTP-date, garbage). */
function waitOf(res: Response): number | undefined {
  const header = res.headers.get("retry-after");
  if (header === null) return 1_000;
  return /^\d{1,4}$/.test(header.trim()) ? Number(header) * 1_000 : undefined;
}

/**
 * One admin API call; a non-2xx answer becomes an error carrying the API's code and message. A
 * command (any method but GET) carries an `Idempotency-Key` of its own, the same on every resend:
 * a 503 may come after the registry stored the command (its projection did not catch up in time),
 * and a resend with that key is answered with the first outcome instead of applying it twice. A
 * 429 or 503 is sent again after its `Retry-After`, at most `MAX_RESENDS` times and
 * `MAX_RESEND_WAIT_MS` of waiting in all: a long `manifold apply` or an export's history reads
 * wait out a rate limit or a restarting nats-server rather than fail, and still end. A connection
 * refused or dropped (the registry restarting, a replica killed mid-command) is sent again the
 * same way after `DROPPED_RESEND_MS`: the key makes a command the registry did store answer as stored.
 */
export async function adminCall(target: AdminTarget, method: string, path: string, body?: unknown): Promise<any> {
  const key: Record<string, string> = method === "GET" ? {} : { "idempotency-key": `manifold-cli-${randomUUID()}` };
  const send = () =>
    fetch(`${target.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${target.token}`, ...key, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  let res = await reach(send, target);
  let waited = 0;
  for (let resent = 0; resent < MAX_RESENDS && (res instanceof Error || RESENT_STATUSES.has(res.status)); resent++) {
    const wait = res instanceof Error ? DROPPED_RESEND_MS : waitOf(res);
    if (wait === undefined || waited + wait > MAX_RESEND_WAIT_MS) break;
    waited += wait;
    if (!(res instanceof Error)) await res.arrayBuffer();
    await new Promise((resolve) => setTimeout(resolve, wait));
    res = await reach(send, target);
  }
  if (res instanceof Error) throw res;
  const text = await res.text();
  const json = text ? JSON.parse(text) : undefined;
  if (!res.ok) {
    const message = `${method} ${path}: ${res.status} ${json?.error?.code ?? ""} ${json?.error?.message ?? ""}`.trim();
    throw Object.assign(new Error(message), { status: res.status, code: json?.error?.code, data: json?.error?.data });
  }
  return json;
}
