export interface AdminResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

/** A thin client for the registry's admin API, as any HTTP client would use it. */
export class AdminClient {
  constructor(
    readonly baseUrl: string,
    readonly token: string,
  ) {}

  async request<T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<AdminResponse<T>> {
    const response = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
  }

  get = <T = any>(path: string) => this.request<T>("GET", path);
  post = <T = any>(path: string, body: unknown, headers?: Record<string, string>) => this.request<T>("POST", path, body, headers);
  delete = <T = any>(path: string, headers?: Record<string, string>) => this.request<T>("DELETE", path, undefined, headers);
}

/**
 * Two admins of one registry, for the suites where one admin's load must not reach the other:
 * `env` is the registry's `MANIFOLD_ADMIN_TOKENS` for both.
 */
export const TWO_ADMINS = {
  bob: "bob-admin-token-0123456789",
  eve: "eve-admin-token-0123456789",
  env: { MANIFOLD_ADMIN_TOKENS: "bob=bob-admin-token-0123456789,eve=eve-admin-token-0123456789" },
} as const;

/** Every item of a paged admin list (`GET /v1/consumers`, …), following `next`. */
export async function listAll<T = any>(admin: AdminClient, path: string): Promise<T[]> {
  const items: T[] = [];
  for (let after: string | undefined, pages = 0; pages < 1_000; pages++) {
    const res = await admin.get<{ items: T[]; next?: string }>(`${path}?limit=500${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    items.push(...res.body.items);
    after = res.body.next;
    if (!after) return items;
  }
  throw new Error(`GET ${path}: more than 1,000 pages`);
}

/**
 * A virtual server as its whole view once showed it: its view (summary and counts) with every
 * selected tool, prompt, resource and template, grant and deprecated alias read from their own
 * paged routes.
 */
export async function wholeVirtualServer(admin: AdminClient, name: string): Promise<any> {
  const path = `/v1/virtual-servers/${encodeURIComponent(name)}`;
  const view = await admin.get(path);
  if (view.status !== 200) throw new Error(`GET ${path}: ${view.status} ${JSON.stringify(view.body)}`);
  const [tools, prompts, resources, resourceTemplates, grants, aliases] = await Promise.all(
    ["tools", "prompts", "resources", "resource-templates", "grants", "aliases"].map((list) => listAll(admin, `${path}/${list}`)),
  );
  const deprecatedAliases = Object.fromEntries(aliases!.map((a: { alias: string; current: string }) => [a.alias, a.current]));
  return { ...view.body, tools, prompts, resources, resourceTemplates, grants, deprecatedAliases };
}
