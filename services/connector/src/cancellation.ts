/**
 * A call that may be cancelled from the bus. Plain state rather than an `AbortController`
 * per call: the direct path aborts its own request, and only the SDK path asks for a signal.
 */
export class Cancellation {
  #cancelled = false;
  #onCancel: (() => void) | undefined;
  #controller: AbortController | undefined;

  get cancelled(): boolean {
    return this.#cancelled;
  }

  /** Runs `action` on cancellation, or at once if the call is already cancelled. One action per call. */
  onCancel(action: () => void): void {
    if (this.#cancelled) action();
    else this.#onCancel = action;
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
    this.#onCancel?.();
  }
}
