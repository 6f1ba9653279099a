import { randomBytes } from "node:crypto";
import type { AuthorizationServerOptions } from "../fixtures/authorizationServer.js";
import { startStack, type Bus, type Stack, type StackOptions } from "./stack.js";

/** Where the gateway reads its one vault key, `k1` (`GATEWAY_VAULT_KEYS`). */
export const VAULT_KEYS = "k1=env:MANIFOLD_SECRET_VAULT_K1";

/** A fresh vault key (32 random bytes, base64), named as `VAULT_KEYS` reads it. */
export const vaultSecrets = (): Record<string, string> => ({ MANIFOLD_SECRET_VAULT_K1: randomBytes(32).toString("base64") });

/** The gateway's vault settings: keyed by `VAULT_KEYS`, its connect links at `publicUrl` (by default an address nothing answers). */
export const vaultEnv = (publicUrl = "http://127.0.0.1:1"): Record<string, string> => ({ GATEWAY_PUBLIC_URL: publicUrl, GATEWAY_VAULT_KEYS: VAULT_KEYS });

export interface VaultStackOptions extends StackOptions {
  /** Where agents' connect links point (`GATEWAY_PUBLIC_URL`). */
  publicUrl?: string;
  /** More gateway settings, or others than these. */
  env?: Record<string, string>;
}

/**
 * A stack whose gateway keeps each consumer's upstream tokens in its vault (a fresh key), requires
 * authentication (the vault acts per consumer) and lets identity providers be plain http, as the
 * fixtures here are; `options.secretsEnv` adds to the vault's key (or replaces it).
 */
export function startVaultStack(nats: Bus | string, { publicUrl, env = {}, ...options }: VaultStackOptions = {}): Promise<Stack> {
  return startStack(nats, { GATEWAY_AUTH: "required", GATEWAY_OAUTH_ALLOW_HTTP: "true", ...vaultEnv(publicUrl), ...env }, { ...options, secretsEnv: { ...vaultSecrets(), ...options.secretsEnv } });
}

export interface VaultClientOptions {
  clientId?: string;
  /** A confidential client's secret (sent in the token request's body); none: a public client. */
  secret?: string;
  /** Whether the server issues it refresh tokens (default: yes). */
  refresh?: boolean;
}

/**
 * Manifold's client registered at an identity provider: consent for each of `upstreams` comes back
 * to the gateway's callback for it (`<publicUrl>/oauth/callback/<upstream>`, one address per
 * upstream, RFC 9700 4.4.2).
 */
export const vaultClient = (publicUrl: string, upstreams: string[], { clientId = "manifold", secret, refresh = true }: VaultClientOptions = {}): NonNullable<AuthorizationServerOptions["clients"]>[number] => ({
  client_id: clientId,
  ...(secret === undefined ? { token_endpoint_auth_method: "none" } : { client_secret: secret, token_endpoint_auth_method: "client_secret_post" }),
  redirect_uris: upstreams.map((upstream) => `${publicUrl}/oauth/callback/${upstream}`),
  grant_types: refresh ? ["authorization_code", "refresh_token"] : ["authorization_code"],
  response_types: ["code"],
});
