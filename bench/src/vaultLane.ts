// The vault lane: the same echo tool through Manifold, once via an upstream whose credential is
// a static secret (`secretHeaders`, an `env:` reference the connector resolves) and once via an
// upstream with `auth: { type: "oauth" }` whose consumer has a token in the vault. The fast
// upstream accepts any bearer (it checks none): the lane measures what the gateway and the
// connector pay for a per-user token, not what an upstream pays to verify one.
import { randomBytes } from "node:crypto";
import { Pool } from "undici";
import type { CallResult } from "./callScenarios.js";
import { round } from "./load.js";
import { RawMcpSession } from "./rawMcp.js";
import type { Row } from "./report.js";

export const VAULT_UPSTREAMS = { static: "fast-static", vault: "fast-vault" } as const;
const CLIENT_ID = "manifold-bench";

/**
 * The secrets both lanes use, as `env:` references under the default prefix: the static
 * upstream credential, the vault key and Manifold's client secret at the authorization server.
 */
export function vaultSecrets(): { env: Record<string, string>; clientSecret: string } {
  const clientSecret = randomBytes(24).toString("base64url");
  return {
    clientSecret,
    env: {
      MANIFOLD_SECRET_BENCH_UPSTREAM: `Bearer ${randomBytes(24).toString("base64url")}`,
      MANIFOLD_SECRET_BENCH_VAULT_KEY: randomBytes(32).toString("base64"),
      MANIFOLD_SECRET_BENCH_CLIENT: clientSecret,
    },
  };
}

/** The gateway's vault settings (its public URL is the redirect URI's origin). */
export const vaultGatewayEnv = (gatewayUrl: string) => ({
  GATEWAY_PUBLIC_URL: gatewayUrl,
  GATEWAY_VAULT_KEYS: "bench=env:MANIFOLD_SECRET_BENCH_VAULT_KEY",
  GATEWAY_OAUTH_ALLOW_HTTP: "true",
});

export const vaultClient = (gatewayUrl: string, clientSecret: string) => ({ clientId: CLIENT_ID, clientSecret, redirectUri: `${gatewayUrl}/oauth/callback/${VAULT_UPSTREAMS.vault}` });

/** The two upstreams' registrations, both in front of the same fast upstream. */
export const vaultUpstreams = (url: string, issuer: string) => [
  { name: VAULT_UPSTREAMS.static, transport: { type: "streamable-http", url, secretHeaders: { Authorization: "env:MANIFOLD_SECRET_BENCH_UPSTREAM" } } },
  { name: VAULT_UPSTREAMS.vault, transport: { type: "streamable-http", url, auth: { type: "oauth", issuer, clientId: CLIENT_ID, clientSecret: "env:MANIFOLD_SECRET_BENCH_CLIENT" } } },
];

/**
 * Seeds the vault the honest way: the consumer's first call is refused with a connect link
 * (-32042), the "browser" confirms it and follows the authorization server back to the
 * gateway's callback, which redeems the code (PKCE, `iss`) into the vault.
 */
export async function connectVaultAccount(endpoint: string, gatewayKey: string, tool: string): Promise<void> {
  const { origin, pathname } = new URL(endpoint);
  const pool = new Pool(origin, { connections: 1 });
  const session = new RawMcpSession(pool, pathname, { authorization: `Bearer ${gatewayKey}` });
  let link: string | undefined;
  try {
    await session.initialize();
    await session.request("tools/call", { name: tool, arguments: { message: "connect" } }).then(
      () => {
        throw new Error("the vault lane's first call should ask for consent");
      },
      (error: { data?: { elicitations?: { url: string }[] } }) => (link = error.data?.elicitations?.[0]?.url),
    );
  } finally {
    await session.close();
    await pool.close();
  }
  if (!link) throw new Error("the vault lane's first call carried no connect link");
  await confirmAndConsent(link);
}

/**
 * The user's browser: opens the connect link's confirmation page, confirms it (the page's form,
 * with the cookie it set), follows the authorization server back to the gateway's callback with
 * the binding cookie the confirmation set. One browser's cookies, as a jar of name=value.
 */
async function confirmAndConsent(link: string): Promise<void> {
  const jar = new Map<string, string>();
  const visit = async (url: string, init: RequestInit = {}) => {
    const res = await fetch(url, { ...init, redirect: "manual", headers: { ...(init.headers as Record<string, string>), cookie: [...jar].map(([k, v]) => `${k}=${v}`).join("; ") } });
    for (const line of res.headers.getSetCookie()) {
      const [pair = ""] = line.split(";");
      jar.set(pair.slice(0, pair.indexOf("=")).trim(), pair.slice(pair.indexOf("=") + 1));
    }
    return res;
  };
  const page = await (await visit(link)).text();
  const action = /<form[^>]*action="([^"]+)"/.exec(page)?.[1];
  const confirm = /name="confirm" value="([^"]+)"/.exec(page)?.[1];
  if (!action || !confirm) throw new Error("connecting the vault lane's account: the connect link showed no confirmation");
  let res = await visit(new URL(action, link).href, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ confirm }).toString() });
  for (let hop = 0; hop < 5; hop++) {
    const location = res.headers.get("location");
    if (res.status === 200) return;
    if ((res.status !== 302 && res.status !== 303) || !location) throw new Error(`connecting the vault lane's account: HTTP ${res.status} at hop ${hop}`);
    res = await visit(new URL(location, res.url || link).href);
  }
  throw new Error("connecting the vault lane's account: too many redirects");
}

/**
 * Rows: p50, calls/s and errors of each, then CPU µs per call of each process on the path; each
 * metric as three rows: static secret, vault token, and the difference (vault − static).
 */
export function vaultRows(clients: number, results: Record<"static" | "vault", CallResult>): Row[] {
  const { static: fixed, vault } = results;
  const s = `vault lane, tools/call 2025, ${clients} client${clients > 1 ? "s" : ""}`;
  const triple = (scenario: string, metric: string, f: number, v: number, digits: number, target?: string): Row[] => [
    { scenario: `${scenario}, static secret`, metric, value: f },
    { scenario: `${scenario}, vault token`, metric, value: v, ...(target ? { target } : {}) },
    { scenario: `${scenario}: vault − static`, metric, value: round(v - f, digits) },
  ];
  const rows: Row[] = [
    ...triple(s, "p50 ms", fixed.p50Ms, vault.p50Ms, 3),
    ...triple(s, "calls/s", fixed.callsPerSec, vault.callsPerSec, 0),
    { scenario: `${s}, static secret`, metric: "errors", value: fixed.errors, target: "0" },
    { scenario: `${s}, vault token`, metric: "errors", value: vault.errors, target: "0" },
  ];
  for (const name of Object.keys(vault.cpuUsPerCall)) rows.push(...triple(`${s}: CPU µs per call`, name, fixed.cpuUsPerCall[name]!, vault.cpuUsPerCall[name]!, 1));
  return rows;
}
