import { EventType, type RegistryEvent } from "@manifold/contracts";

/** What the first request with an Idempotency-Key did, as its retries are answered. */
export interface IdempotentOutcome {
  /** Digest of that request: a retry must match it. */
  fingerprint: string;
  /** Version of the object after it (its last event's sequence). */
  version: number;
  /** The id it generated (an API key's id, a grant's id), which a retry reports instead of generating another. */
  createdId?: string;
}

/** How long a key stays bound to its request, counted from the event's time. */
export const IDEMPOTENCY_WINDOW_MS = 24 * 3_600_000;
/** Bounds memory whatever admins send: past it the oldest keys are forgotten first. */
export const IDEMPOTENCY_MAX_KEYS = 100_000;

const createdIdOf = (event: RegistryEvent) =>
  event.type === EventType.consumerKeyIssued ? event.data.key.keyId : event.type === EventType.virtualServerAccessGranted ? event.data.grant.grantId : undefined;

/**
 * Idempotency-Keys of recent admin commands, folded from the registry stream like the catalog:
 * each event's meta holds the key (`commandId`), the actor and the request's fingerprint, so every
 * replica, and a restarted one after its replay, answers a retry the same way.
 */
export class IdempotencyIndex {
  readonly #outcomes = new Map<string, IdempotentOutcome & { at: number }>();

  constructor(
    readonly windowMs = IDEMPOTENCY_WINDOW_MS,
    readonly maxKeys = IDEMPOTENCY_MAX_KEYS,
  ) {}

  /** Feed every applied event (`projection.onApplied`). */
  record(event: RegistryEvent, sequence: number): void {
    const { fingerprint, actor, commandId, at } = event.meta;
    if (!fingerprint) return;
    const id = keyOf(actor ?? "", commandId);
    const time = Date.parse(at);
    const createdId = createdIdOf(event) ?? this.#outcomes.get(id)?.createdId;
    // Re-inserted so the map stays in event order, oldest first.
    this.#outcomes.delete(id);
    this.#outcomes.set(id, { fingerprint, version: sequence, at: time, ...(createdId ? { createdId } : {}) });
    for (const [oldest, outcome] of this.#outcomes) {
      if (this.#outcomes.size <= this.maxKeys && outcome.at >= time - this.windowMs) break;
      this.#outcomes.delete(oldest);
    }
  }

  /** The outcome of the key's first request, while the key is within its window. */
  find(actor: string, key: string, now = Date.now()): IdempotentOutcome | undefined {
    const outcome = this.#outcomes.get(keyOf(actor, key));
    return outcome && outcome.at >= now - this.windowMs ? outcome : undefined;
  }
}

const keyOf = (actor: string, key: string) => `${actor}\n${key}`;
