import { ManifoldError } from "@manifold/contracts";

/** What a refused read is told to wait: a page takes at most 2 s to read (`streamPage.ts`), a tool search less. */
const RETRY_AFTER_SECONDS = 1;

/**
 * How many audit, history and event page reads run at once, per admin and in all. Each read is a
 * JetStream consumer and up to 2 s of the bus's API: one admin's 200 reads at once put another's
 * commands at p50 436 ms (4 ms alone) and held 735 consumers on the audit stream; past the bound
 * a read is refused at once (429 `too_many_reads` for the admin, 503 `at_capacity` for all).
 * Tool searches (`toolSearch.ts`) have a pool of their own, so that no number of them takes a page
 * read's place (`noun` names what a pool counts in its refusals).
 */
export class PageReads {
  readonly #perAdmin = new Map<string, number>();
  #running = 0;

  constructor(
    readonly limits: { readonly perAdmin: number; readonly overall: number },
    readonly noun = "reads",
  ) {}

  async run<T>(admin: string, read: () => Promise<T>): Promise<T> {
    const held = this.#perAdmin.get(admin) ?? 0;
    if (held >= this.limits.perAdmin) {
      throw new ManifoldError("too_many_reads", `admin '${admin}' already has ${held} ${this.noun} running (at most ${this.limits.perAdmin}); wait for one to answer`, {
        retryAfterSeconds: RETRY_AFTER_SECONDS,
      });
    }
    if (this.#running >= this.limits.overall) {
      throw new ManifoldError("at_capacity", `the registry is running its ${this.limits.overall} ${this.noun}; retry shortly`, { retryAfterSeconds: RETRY_AFTER_SECONDS });
    }
    this.#perAdmin.set(admin, held + 1);
    this.#running++;
    try {
      return await read();
    } finally {
      this.#running--;
      const left = (this.#perAdmin.get(admin) ?? 1) - 1;
      if (left > 0) this.#perAdmin.set(admin, left);
      else this.#perAdmin.delete(admin);
    }
  }
}
