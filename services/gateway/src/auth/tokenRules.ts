import { ManifoldError } from "@manifold/contracts";
import { errors } from "jose";

/** How far clocks may disagree when `exp`, `nbf` and `iat` are checked. */
export const CLOCK_SKEW_S = 30;

/** Asymmetric signatures only: a JWKS is public, so a symmetric key published in one proves nothing. */
export const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];

export const unauthorized = (message: string, cause?: unknown) => new ManifoldError("unauthorized", message, undefined, cause === undefined ? undefined : { cause });

const INCURABLE = new WeakSet<ManifoldError>();

/**
 * A refusal no registry change can lift (a token of no shape Manifold accepts, a signature that
 * does not verify under the provider's key, an expired token): answered at once, without catching
 * up with the registry and checking the token a second time.
 */
export const incurable = (error: ManifoldError): ManifoldError => (INCURABLE.add(error), error);
export const isIncurable = (error: ManifoldError): boolean => INCURABLE.has(error);

/** The answer to a request without credentials wherever they are required: the same with or without anonymous access. */
export const missingCredentials = () => unauthorized("missing bearer token: send Authorization: Bearer <API key or JWT>");

/**
 * Whether a compact JWS's signature is written in canonical base64url. Decoders ignore the unused
 * low bits of the last character, so 16 spellings of one ES256 or RS256 signature verified, and
 * each was its own entry in the authenticator's cache. Header and payload are signed as written.
 */
export const canonicalSignature = (token: string): boolean => {
  const signature = token.slice(token.lastIndexOf(".") + 1);
  return Buffer.from(signature, "base64url").toString("base64url") === signature;
};

/**
 * A token may live at most `maxLifetimeS`: measured from its `iat` when present, and from now in
 * any case, so a token without `iat` cannot be valid for longer either. `iat` in the future
 * (beyond the skew) is refused. jose has checked presence and types of `exp`, `nbf` and `iat`.
 */
export function checkLifetime(claims: { exp?: number; iat?: number }, nowS: number, maxLifetimeS: number): void {
  const { exp, iat } = claims;
  if (exp === undefined) throw unauthorized("the token has no expiry ('exp'): tokens without one are refused");
  if (iat !== undefined && iat > nowS + CLOCK_SKEW_S) throw unauthorized("the token was issued in the future ('iat')");
  if (exp - (iat ?? nowS) > maxLifetimeS || exp - nowS > maxLifetimeS + CLOCK_SKEW_S) {
    throw unauthorized(`the token lives longer than the gateway accepts (${maxLifetimeS} s): ask the identity provider for a shorter-lived token`);
  }
}

/**
 * Why jose refused a token, in our own fixed words: nothing of the token (or of a fetched
 * document) is repeated, so the message is safe to send back, and the cause stays for logs.
 */
export function describeJoseError(error: unknown): ManifoldError {
  if (error instanceof ManifoldError) return error;
  if (error instanceof errors.JWTExpired) return incurable(unauthorized("the token has expired", error));
  if (error instanceof errors.JWTClaimValidationFailed) {
    const claim = ["aud", "iss", "sub", "exp", "nbf", "iat", "typ"].includes(error.claim) ? error.claim : "a claim";
    return unauthorized(error.reason === "missing" ? `the token lacks the required claim '${claim}'` : `the token's claim '${claim}' is not acceptable`, error);
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return incurable(unauthorized("the token's signature algorithm is not accepted", error));
  if (error instanceof errors.JWKSNoMatchingKey) return unauthorized("no key published by the identity provider matches the token", error);
  if (error instanceof errors.JWSSignatureVerificationFailed) return incurable(unauthorized("the token's signature is invalid", error));
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid || error instanceof TypeError) {
    return unauthorized("the identity provider's keys could not be fetched; try again later", error);
  }
  return incurable(unauthorized("the token is not a valid JWT", error));
}
