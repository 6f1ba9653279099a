/**
 * A call that may be cancelled from the bus. Plain state rather than an `AbortController`
 * per call: the direct path aborts its own request, and only the SDK path asks for a signal.
 */
export class Cancellation {
  #cancelled = false;
  /** What to do on cancellation: the request under way, and a round of questions out to the agent. */
  #actions: (() => void)[] | undefined;
  #controller: AbortController | undefined;

  get cancelled(): boolean {
    return this.#cancelled;
  }

  /** Runs `action` on cancellation, or at once if the call is already cancelled, until `offCancel`. */
  onCancel(action: () => void): void {
    if (this.#cancelled) action();
    else (this.#actions ??= []).push(action);
  }

  /** Forgets an action whose work is over: a spent round must not stand in for the request still running. */
  offCancel(action: () => void): void {
    const i = this.#actions?.indexOf(action) ?? -1;
    if (i >= 0) this.#actions!.splice(i, 1);
  }

  /** An `AbortSignal` for APIs that need one (the SDK client). */
  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    if (this.#cancelled) this.#controller.abort();
    return this.#controller.signal;
  }

  cancel(): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    this.#controller?.abort();
    const actions = this.#actions;
    this.#actions = undefined;
    for (const action of actions ?? []) action();
  }
}
