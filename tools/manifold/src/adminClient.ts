import { readFile } from "node:fs/promises";

export interface AdminTarget {
  url: string;
  token: string;
}

/** Where the admin API is and how to authenticate: the environment, else the all-in-one's data folder. */
export async function adminTarget(env: Record<string, string | undefined>): Promise<AdminTarget> {
  const url = env.MANIFOLD_REGISTRY_URL ?? "http://127.0.0.1:8081";
  const token = env.MANIFOLD_ADMIN_TOKEN ?? (await readFile(`${env.MANIFOLD_DATA_DIR ?? ".manifold"}/admin-token`, "utf8").catch(() => "")).trim();
  if (!token) throw new Error("set MANIFOLD_ADMIN_TOKEN (or run where .manifold/admin-token exists)");
  return { url, token };
}

/** One admin API call; a non-2xx answer becomes an error carrying the API's code and message. */
export async function adminCall(target: AdminTarget, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${target.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${target.token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : undefined;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${json?.error?.code ?? ""} ${json?.error?.message ?? ""}`.trim());
  return json;
}
