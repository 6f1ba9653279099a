import { MAX_URI_LENGTH } from "@manifold/contracts";

/** How long updates of one resource are gathered into one once an update has gone out. */
export const UPDATE_WINDOW_MS = 100;
/** Distinct URIs one window holds at most (at most `MAX_URI_LENGTH` each, so ≤ 4 MiB): URIs past it are dropped. */
export const MAX_PENDING_URIS = 1_024;

/**
 * `notifications/resources/updated` from one upstream, passed on at most once per URI and window.
 * An update tells a subscriber to read the resource again, so a run of them says no more than
 * the last one: an upstream sending them as fast as it can (one hostile upstream sent tens of
 * thousands a second) would otherwise have each go to every gateway and on to every stream that
 * subscribed. The first update goes out at once and opens a window; updates within it go out
 * together when it ends (the last update of a URI always follows, up to `MAX_PENDING_URIS` URIs
 * a window), and that opens the next.
 */
export class UpdateWindow {
  readonly #pending = new Set<string>();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly publish: (uri: string) => void,
    readonly windowMs = UPDATE_WINDOW_MS,
  ) {}

  add(uri: string): void {
    if (uri.length === 0 || uri.length > MAX_URI_LENGTH) return;
    if (this.#timer === undefined) {
      this.publish(uri);
      this.#open();
    } else if (this.#pending.size < MAX_PENDING_URIS) this.#pending.add(uri);
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending.clear();
  }

  #open(): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#pending.size === 0) return;
      const uris = [...this.#pending];
      this.#pending.clear();
      for (const uri of uris) this.publish(uri);
      this.#open();
    }, this.windowMs);
    this.#timer.unref();
  }
}
