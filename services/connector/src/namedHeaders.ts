import type { Dispatcher } from "undici";

type Headers = Record<string, string | string[]>;

/** The pause, resume and abort undici's own adapter gives a handler (handler/unwrap-handler.js), over the hooks' `abort` and `resume`. */
class Controller implements Dispatcher.DispatchController {
  #paused = false;
  #aborted = false;
  #reason: Error | null = null;
  resumeReading: (() => void) | undefined;

  constructor(readonly abortRequest: (reason: Error) => void) {}

  get paused(): boolean {
    return this.#paused;
  }
  get aborted(): boolean {
    return this.#aborted;
  }
  get reason(): Error | null {
    return this.#reason;
  }
  pause(): void {
    this.#paused = true;
  }
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.resumeReading?.();
  }
  abort(reason: Error): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.abortRequest(reason);
  }
}

const text = (raw: Buffer | string) => (typeof raw === "string" ? raw : raw.toString("latin1"));

/**
 * A `DispatchHandler` given only the response headers it names (lower case), found in undici's
 * raw list: to a handler with `onRequestStart` undici hands every response's headers parsed into
 * an object, and its trailers too (`parseHeaders`, ~11,000 instructions a tools/call, callgrind),
 * where the connector's call reads two. This speaks the hooks undici's core calls
 * (`onConnect`, `onHeaders`, `onData`, `onComplete`, `onError`; core/request.js), which its types
 * mark deprecated: namedHeaders.unit.spec.ts drives it through a real undici Pool and fails when
 * they change. A repeated header reads as undici's would (an array), trailers as none.
 */
export class NamedHeaders {
  #controller: Controller | undefined;

  constructor(
    readonly handler: Dispatcher.DispatchHandler,
    readonly names: readonly string[],
  ) {}

  onConnect(abort: (reason: Error) => void, context?: unknown): void {
    this.#controller = new Controller(abort);
    this.handler.onRequestStart?.(this.#controller, context);
  }

  onHeaders(statusCode: number, raw: (Buffer | string)[], resume: () => void, statusText: string): boolean {
    const controller = this.#controller!;
    controller.resumeReading = resume;
    const headers: Headers = {};
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!;
      if (!this.names.some((wanted) => wanted.length === name.length)) continue;
      const key = text(name).toLowerCase();
      if (!this.names.includes(key)) continue;
      const value = text(raw[i + 1]!);
      const seen = headers[key];
      headers[key] = seen === undefined ? value : typeof seen === "string" ? [seen, value] : [...seen, value];
    }
    this.handler.onResponseStart?.(controller, statusCode, headers, statusText);
    return !controller.paused;
  }

  onData(chunk: Buffer): boolean {
    const controller = this.#controller!;
    this.handler.onResponseData?.(controller, chunk);
    return !controller.paused;
  }

  onComplete(): void {
    this.handler.onResponseEnd?.(this.#controller!, {});
  }

  onError(error: Error): void {
    this.handler.onResponseError?.(this.#controller!, error);
  }
}
