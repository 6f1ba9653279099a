import type { Principal } from "@manifold/domain";

/**
 * A verdict remembered per token. `resource`: the endpoint it holds for when it depended on one (an
 * authorization server's token names its audience), else any. Keyed by (resource, token) instead,
 * one valid token of another provider sent to 10,000 paths (`/mcp/x1`…, built from the raw URL
 * before the virtual server is looked up) was verified 10,000 times and cleared every tenant's.
 */
export interface Verdict {
  principal: Principal;
  expiresAt: number;
  resource?: string;
}

/**
 * Verified tokens, so the hot path pays for verification once per token, bounded two ways. Each
 * principal holds at most a sixteenth of the entries: past that its own oldest token is forgotten,
 * so one caller minting valid tokens (a JWT per request) churns only its own. When the whole cache
 * is full its oldest entry goes, never the lot: it used to be cleared whole, and one caller with
 * 10,000 fresh tokens made every tenant's next request pay a full verification again.
 */
export class VerdictCache {
  readonly #verdicts = new Map<string, Verdict>();
  /** Each principal's tokens, oldest first. */
  readonly #tokensOf = new Map<string, string[]>();
  readonly #limit: number;
  readonly #share: number;

  constructor(limit: number) {
    this.#limit = limit;
    this.#share = Math.max(1, Math.floor(limit / 16));
  }

  get(token: string): Verdict | undefined {
    return this.#verdicts.get(token);
  }

  remember(token: string, verdict: Verdict): void {
    const id = verdict.principal.id;
    this.#forget(token);
    const own = this.#tokensOf.get(id);
    if (own && own.length >= this.#share) this.#forget(own[0]!);
    else if (this.#verdicts.size >= this.#limit) this.#forget(this.#verdicts.keys().next().value!);
    this.#verdicts.set(token, verdict);
    const tokens = this.#tokensOf.get(id);
    if (tokens) tokens.push(token);
    else this.#tokensOf.set(id, [token]);
  }

  clear(): void {
    this.#verdicts.clear();
    this.#tokensOf.clear();
  }

  get size(): number {
    return this.#verdicts.size;
  }

  #forget(token: string): void {
    const verdict = this.#verdicts.get(token);
    if (!verdict) return;
    this.#verdicts.delete(token);
    const tokens = this.#tokensOf.get(verdict.principal.id)!;
    tokens.splice(tokens.indexOf(token), 1);
    if (tokens.length === 0) this.#tokensOf.delete(verdict.principal.id);
  }
}
