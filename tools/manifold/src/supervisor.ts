/** A started child: how it ended, once it has; whether it came up; how to stop it. */
export interface Running {
  /** Resolves with how the child ended (`exit code 1`, `signal SIGKILL`). */
  readonly exited: Promise<string>;
  /** Resolves once the child serves; rejects if it never does. */
  readonly ready: Promise<void>;
  stop(): Promise<void>;
}

export interface ChildSpec {
  name: string;
  /** Where its output goes, named in the messages about it. */
  logFile?: string;
  start(signal: AbortSignal): Promise<Running>;
}

interface Entry {
  spec: ChildSpec;
  running: Running | undefined;
  startedAt: number;
  restarts: number;
  timer: NodeJS.Timeout | undefined;
}

const BACKOFF_MS = [500, 1_000, 2_000, 5_000, 10_000, 30_000] as const;
/** A child that ran this long before it died starts again from the shortest backoff. */
const STABLE_MS = 30_000;

/**
 * Starts the all-in-one's children in order, restarts one that dies (logged, with backoff:
 * one crashing service does not take the others down), and stops them all in reverse order.
 * A stop while children are still starting stops those too.
 */
export class Supervisor {
  readonly #entries: Entry[] = [];
  readonly #launching = new Set<Promise<unknown>>();
  readonly #abort = new AbortController();
  readonly #log: (line: string) => void;

  constructor(log: (line: string) => void) {
    this.#log = log;
  }

  /** Aborted once `stop` is called: a start in progress gives up. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Starts a child and resolves once it is ready; it is restarted whenever it dies afterwards. */
  async start(spec: ChildSpec): Promise<void> {
    const entry: Entry = { spec, running: undefined, startedAt: 0, restarts: 0, timer: undefined };
    this.#entries.push(entry);
    const running = await this.#launch(entry);
    await running.ready;
  }

  async #launch(entry: Entry): Promise<Running> {
    this.signal.throwIfAborted();
    const launching = entry.spec.start(this.signal);
    this.#launching.add(launching);
    try {
      const running = await launching;
      entry.running = running;
      entry.startedAt = Date.now();
      void running.exited.then((how) => this.#exited(entry, running, how));
      if (this.signal.aborted) {
        await running.stop();
        this.signal.throwIfAborted();
      }
      return running;
    } finally {
      this.#launching.delete(launching);
    }
  }

  #exited(entry: Entry, running: Running, how: string): void {
    if (this.signal.aborted || entry.running !== running) return;
    entry.running = undefined;
    if (Date.now() - entry.startedAt > STABLE_MS) entry.restarts = 0;
    const delay = BACKOFF_MS[Math.min(entry.restarts, BACKOFF_MS.length - 1)]!;
    entry.restarts++;
    const where = entry.spec.logFile ? `; see ${entry.spec.logFile}` : "";
    this.#log(`manifold: ${entry.spec.name} exited unexpectedly (${how}); restarting it in ${delay} ms${where}`);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      this.#launch(entry).then(
        (again) => again.ready.then(() => this.#log(`manifold: ${entry.spec.name} is back (restart ${entry.restarts})`), () => again.stop()),
        (error: unknown) => {
          if (this.signal.aborted) return;
          // Could not even be started: try again later, as if it had died at once.
          const failed: Running = { exited: Promise.resolve(String(error)), ready: Promise.resolve(), stop: async () => undefined };
          entry.running = failed;
          this.#exited(entry, failed, error instanceof Error ? error.message : String(error));
        },
      );
    }, delay);
  }

  /** Stops every child, last started first; children still starting are stopped too. */
  async stop(): Promise<void> {
    this.#abort.abort();
    for (const entry of this.#entries) clearTimeout(entry.timer);
    await Promise.allSettled(this.#launching);
    for (const entry of [...this.#entries].reverse()) {
      const running = entry.running;
      entry.running = undefined;
      await running?.stop();
    }
  }
}
