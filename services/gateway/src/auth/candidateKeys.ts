import { errors, jwtVerify, type CryptoKey, type JWTVerifyGetKey, type JWTVerifyOptions, type JWTVerifyResult } from "jose";
import { incurable, unauthorized } from "./tokenRules.js";

/**
 * The most keys one token is tried against. A token without `kid` matches every key of its type,
 * and a provider rotating its keys publishes the old and the new one together: such a token is
 * tried against each (at most this many verifications). A provider publishing more is not let
 * multiply what one token costs: its tokens must name their key.
 */
export const MAX_CANDIDATE_KEYS = 4;

/**
 * `jwtVerify`, except that a token matching several of the provider's keys (jose's
 * `JWKSMultipleMatchingKeys`, which yields them) is verified by the one whose signature holds. Two
 * distinct public keys cannot both verify one signature, so the first that does is the only one.
 */
export async function verifyAmongKeys(token: string, getKey: JWTVerifyGetKey, options: JWTVerifyOptions): Promise<JWTVerifyResult> {
  try {
    return await jwtVerify(token, getKey, options);
  } catch (error) {
    if (!(error instanceof errors.JWKSMultipleMatchingKeys)) throw error;
    // Counted before any is tried (jose keeps the imported keys), so a crowded set costs no verification at all.
    const candidates: CryptoKey[] = [];
    for await (const key of error) {
      if (candidates.push(key) > MAX_CANDIDATE_KEYS) {
        throw incurable(unauthorized(`the token names no key ('kid') and its identity provider publishes more than ${MAX_CANDIDATE_KEYS} keys that could have signed it: ask for tokens that name their key`));
      }
    }
    for (const key of candidates) {
      try {
        return await jwtVerify(token, key, options);
      } catch (failed) {
        if (!(failed instanceof errors.JWSSignatureVerificationFailed)) throw failed;
      }
    }
    throw new errors.JWSSignatureVerificationFailed();
  }
}
