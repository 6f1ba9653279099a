import { createHash } from "node:crypto";
import { z } from "zod";

/**
 * Names a credential on the bus without carrying it: SHA-256 of the token, domain-separated so
 * the digest matches no other hash of it Manifold computes. Sound for what the vault holds
 * (tokens an authorization server issued, high-entropy by RFC 6749 §10.10): a digest of such a
 * token cannot be turned back into it by guessing. A low-entropy secret would need a keyed hash.
 */
export const credentialFingerprint = (token: string) => createHash("sha256").update("manifold-credential\0").update(token).digest("base64url");

/**
 * A gateway dropped a consumer's upstream token (disconnected, revoked, replaced by a refresh, its
 * consumer deleted): every connector serving the upstream closes the sessions opened with it.
 * Published on `Subjects.credentialDropped(<upstream>)`.
 */
export const CredentialDropped = z.strictObject({ fingerprint: z.string().regex(/^[A-Za-z0-9_-]{43}$/) });
export type CredentialDropped = z.infer<typeof CredentialDropped>;
